"""Helpers shared by the benchmark scripts: timed child processes, task configs, ratio lines.

Every script measures the driver against a reference *in the same run*, repeats both interleaved,
and prints medians and one line ``RATIO <name> = <value>x (target ...): PASS|FAIL``. A script never
asserts: the machines are noisy, and timings live here, not in the tests.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / "benchmarks" / ".data"  # gitignored
GNU_TIME = "/usr/bin/time"
DRIVER_COMMAND_ENV = "BENCH_DRIVER_COMMAND"
KIB_PER_MIB = 1024.0
_MAXRSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")


@dataclass(frozen=True)
class Finished:
    """A child process that ran to the end: its wall time and the kernel's peak RSS of its tree."""

    returncode: int
    wall_s: float
    cpu_s: float  # user + system, the child and every descendant it reaped
    maxrss_kib: int  # wait4 ru_maxrss: the child and every descendant it reaped (a max)
    stdout: str
    stderr: str


def driver_command() -> list[str]:
    """How the driver is started: ``$BENCH_DRIVER_COMMAND`` (to time a prototype, e.g.
    ``PYTHONPATH=/tmp/proto BENCH_DRIVER_COMMAND="python3 -m driver"``), else ``bench-driver``
    beside this interpreter (the venv's), else on PATH, else ``python -m driver``."""
    override = os.environ.get(DRIVER_COMMAND_ENV)
    if override:
        return shlex.split(override)
    beside = Path(sys.executable).parent / "bench-driver"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("bench-driver")
    return [found] if found else [sys.executable, "-m", "driver"]


def driver_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment (plus *extra*); the repository made importable for ``python -m driver``."""
    env = {**os.environ, **(extra or {})}
    if driver_command()[-2:] == ["-m", "driver"] and not os.environ.get(DRIVER_COMMAND_ENV):
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{path}" if path else str(REPO)
    return env


def bytecode_cached_env(pycache: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """:func:`driver_env` with a private bytecode cache, as an installed driver has (these
    machines set PYTHONDONTWRITEBYTECODE, so an editable install would compile every module on
    every start); warm it with one run first."""
    env = driver_env({"PYTHONPYCACHEPREFIX": str(pycache), **(extra or {})})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_timed(
    argv: Sequence[str],
    workdir: Path,
    env: Mapping[str, str] | None = None,
    stdout_path: Path | None = None,
    stdout_fd: int | None = None,
) -> Finished:
    """Run *argv* to the end; wall time from spawn to reap, peak RSS from ``os.wait4``.

    Output goes to files, never to pipes this process must drain, so that only the child's own
    work is timed. With *stdout_path* standard output is kept there (and not read back); with
    *stdout_fd* it goes to that open descriptor (a pipe or a terminal another process reads).
    """
    out_path = stdout_path or workdir / "_stdout.txt"
    err_path = workdir / "_stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=workdir, env=dict(env) if env else None,
                                stdin=subprocess.DEVNULL, stderr=err,
                                stdout=out if stdout_fd is None else stdout_fd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = "" if stdout_path or stdout_fd is not None else out_path.read_text("utf-8", "replace")
    cpu = usage.ru_utime + usage.ru_stime
    return Finished(proc.returncode, wall, cpu, int(usage.ru_maxrss), stdout,
                    err_path.read_text("utf-8", "replace"))


def gnu_time_maxrss_kib(argv: Sequence[str], workdir: Path) -> tuple[int, str]:
    """(peak RSS in KiB, how it was measured) for *argv*, by ``/usr/bin/time -v`` if installed.

    Without GNU time the same kernel figure comes from ``os.wait4`` here (GNU time reads it the
    same way); this process is small, so the fork floor does not hide a large workload.
    """
    if os.access(GNU_TIME, os.X_OK):
        done = run_timed([GNU_TIME, "-v", *argv], workdir)
        found = _MAXRSS.search(done.stderr)
        if done.returncode == 0 and found:
            return int(found.group(1)), "/usr/bin/time -v"
    done = run_timed(argv, workdir)
    return done.maxrss_kib, "os.wait4 (GNU time missing: apt-get install -y time)"


def write_task_config(path: Path, name: str, command: str,
                      metrics: Sequence[tuple[str, str, str]], timeout_s: float = 3600,
                      optional: Sequence[str] = ()) -> None:
    """A task_config.toml with one task; *metrics* are (name, Python regex, compute method),
    those named in *optional* may find nothing."""
    import tomli_w

    task = {
        "command_to_execute": command,
        "timeout": timeout_s,
        "patterns": [m[1] for m in metrics],
        "metrics": [m[0] for m in metrics],
        "compute_method": [m[2] for m in metrics],
    }
    if optional:
        task["optional_metrics"] = list(optional)
    path.write_text(tomli_w.dumps({"tasks": {name: task}}), encoding="utf-8")


def median(values: Sequence[float]) -> float:
    """The median (the machines are noisy: never the mean)."""
    return statistics.median(values)


def spread(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """``min..max`` of *values*, to show how noisy a median is."""
    return f"{fmt.format(min(values))}..{fmt.format(max(values))}"


def print_ratio(name: str, value: float, target: str, passed: bool) -> None:
    """The line a reader (and the smoke test) looks for. Never raises on a miss."""
    print(f"RATIO {name} = {value:.3f}x (target {target}): {'PASS' if passed else 'FAIL'}",
          flush=True)


def machine_line() -> str:
    """Python version, cores and load: the context a timing needs."""
    try:
        load = " load average %.2f %.2f %.2f;" % os.getloadavg()
    except OSError:
        load = ""
    return (f"python {sys.version.split()[0]}, {os.cpu_count()} cores;{load} "
            f"driver: {' '.join(driver_command())}")
