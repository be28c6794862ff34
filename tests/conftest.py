"""Shared fixtures: a task config written to a temp dir, and the real CLI run as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Unit tests never pick up plugins from installed distributions (as pytest does for its own).
os.environ["BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD"] = "1"

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"


@dataclass
class CliResult:
    """A finished ``bench-driver`` process and the files it wrote."""

    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    @property
    def result(self) -> dict[str, Any]:
        return json.loads((self.cwd / "dlbenchmark_result.json").read_text())

    @property
    def record(self) -> dict[str, Any]:
        records = sorted((self.cwd / "bench-runs").glob("*/*/record.json"))
        assert records, f"no run record; stderr:\n{self.stderr}"
        return json.loads(records[-1].read_text())


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a task_config.toml (dedented) into tmp_path and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "task_config.toml"
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli(tmp_path: Path):
    """Run ``python -m driver ARGS`` in tmp_path (where task_config.toml is written)."""

    def run(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "driver", *args],
            cwd=tmp_path,
            capture_output=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr, tmp_path)

    return run


def alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, exited and unreaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def script(name: str) -> str:
    """Path of a test workload script in tests/scripts, for use in a command."""
    return str(SCRIPTS / name)


def install_plugin_distribution(root: Path, dist: str, version: str, module: str,
                                entry_point: str, code: str) -> Path:
    """Install a tiny distribution (its package *module* holding *code*, a ``bench_driver``
    entry point *entry_point*) with pip into ``root/site``, offline; return that folder."""
    src = root / f"src-{dist}"
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text(textwrap.dedent(code))
    (src / "pyproject.toml").write_text(textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{dist}"
        version = "{version}"
        [project.entry-points.bench_driver]
        {entry_point} = "{module}"
    """))
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--no-build-isolation", "--target", str(site), str(src)],
                   check=True, capture_output=True)
    return site


class TickCounter:
    """Lets a test wait for the sampling thread's next ticks instead of sleeping."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def tick(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait(self, ticks: int) -> None:
        with self.changed:
            target = self.count + ticks
            assert self.changed.wait_for(lambda: self.count >= target, timeout=60)


# --- a local Ray cluster (tests/test_backends_ray.py, tests/test_search_backends.py) ------------

RAY_START_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ray_address(tmp_path_factory: pytest.TempPathFactory):
    """One local Ray head for the whole session, shared by every test file that asks for it,
    in a temporary directory (``RAY_AUTH_MODE=disabled``), stopped at the end of the session.
    Its workers use this interpreter and import this checkout."""
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         f"--port={port}", f"--temp-dir={tmp_path_factory.mktemp('ray')}", "--num-cpus=2",
         "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + RAY_START_TIMEOUT_S
    while not _ray_answers(port):
        assert head.poll() is None and time.monotonic() < deadline, "ray start failed"
        time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    head.terminate()
    head.wait(timeout=60)


def _ray_answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
