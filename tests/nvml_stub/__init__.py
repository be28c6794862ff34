"""The C stand-in for ``libnvidia-ml.so.1`` (nvml_stub.c): building it, and writing its scenarios.

End-to-end GPU tests run the real CLI with the real ``pynvml`` (nvidia-ml-py) on top of this
library: the test suite compiles it with gcc into a temporary folder, one copy per driver age,
and points the subprocess's ``LD_LIBRARY_PATH`` there (the dynamic loader reads it at process
start, so in-process tests cannot switch to it). Use the session fixture :func:`nvml_libs` (import
it into the test module) and a :class:`Scenario`::

    scenario = Scenario(tmp_path)
    scenario.gpu(name="NVIDIA H100", total_mib=81559, reserved_mib=530)
    scenario.process(0, pid_file=tmp_path / "w" / "child.pid", used_mib=2048)
    run = cli("--task-name", "g", env=scenario.env(nvml_libs))
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

SOURCE = Path(__file__).resolve().parent / "nvml_stub.c"
SCENARIO_ENV = "BENCH_NVML_STUB"
# driver age -> compiler flags (see nvml_stub.c)
VARIANTS = {
    "current": [],
    "r535_early": ["-DSTUB_R535_EARLY"],
    "r470": ["-DSTUB_R470"],
    "r440": ["-DSTUB_R440"],
}
GCC_MISSING = ("gcc is needed to build the NVML stand-in for the GPU tests; install it with "
               "`apt-get install -y gcc` (Debian/Ubuntu) or `dnf install -y gcc`")


class StubUnavailable(RuntimeError):
    """The stand-in cannot be built here (no gcc, or the compiler failed)."""


def build(folder: Path) -> dict[str, Path]:
    """Compile every variant into ``folder/<variant>/libnvidia-ml.so.1``; the folders by name."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise StubUnavailable(GCC_MISSING)
    libs = {}
    for variant, flags in VARIANTS.items():
        target = folder / variant
        target.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", *flags,
             "-Wl,-soname,libnvidia-ml.so.1", "-o", str(target / "libnvidia-ml.so.1"),
             str(SOURCE), "-lpthread"],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise StubUnavailable(f"building the NVML stand-in ({variant}) failed:\n{done.stderr}")
        libs[variant] = target
    return libs


@pytest.fixture(scope="session")
def nvml_libs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """The stand-in built once per test session: ``{variant: folder holding libnvidia-ml.so.1}``."""
    try:
        libs = build(tmp_path_factory.mktemp("nvml_stub"))
    except StubUnavailable as exc:
        pytest.fail(str(exc))  # never a skip: these tests are the only check of the GPU paths
    yield libs


def _words(fields: dict[str, object]) -> str:
    words = []
    for key, value in fields.items():
        text = str(value)
        words.append(f'{key}="{text}"' if " " in text else f"{key}={text}")
    return " ".join(words)


class Scenario:
    """One machine as the stand-in shows it, written to ``folder/nvml_scenario.txt``."""

    def __init__(self, folder: Path, driver: str = "550.54.15") -> None:
        self.path = folder / "nvml_scenario.txt"
        self.log = folder / "nvml_calls.log"
        self.lines = [f"nvml driver={driver} log={self.log}"]
        self.uuids: list[str] = []  # of the GPUs, by NVML index

    def gpu(self, **fields: object) -> int:
        """Add the next GPU (fields as in nvml_stub.c); its NVML index."""
        index = len(self.uuids)
        fields.setdefault("uuid", f"GPU-{index:x}{index:x}{index:x}{index:x}aaaa-0000-4000-8000-"
                                  f"{index:012d}")
        self.uuids.append(str(fields["uuid"]))
        self.lines.append(f"gpu {_words(fields)}")
        return index

    def process(self, gpu: int, **fields: object) -> None:
        """A compute process on GPU *gpu*: ``pid=`` or ``pid_file=``, ``used_mib=``..."""
        self.lines.append(f"process gpu={gpu} {_words(fields)}")

    def mig(self, gpu: int, uuid: str, total_mib: int = 9856) -> None:
        """A MIG instance of GPU *gpu*."""
        self.lines.append(f"mig gpu={gpu} uuid={uuid} total_mib={total_mib}")

    def env(self, libs: dict[str, Path], variant: str = "current") -> dict[str, str]:
        """Write the scenario; the environment that makes a subprocess's pynvml load the stub."""
        self.path.write_text("\n".join(self.lines) + "\n")
        return {"LD_LIBRARY_PATH": str(libs[variant]), SCENARIO_ENV: str(self.path),
                "BENCH_DRIVER_NVML_MODULE": ""}

    def calls(self) -> Counter[str]:
        """How often NVML was initialised and shut down, over every process: ``{"init": n, ...}``."""
        if not self.log.exists():
            return Counter()
        return Counter(line.split()[0] for line in self.log.read_text().splitlines())


def preload(libs: dict[str, Path], variant: str = "current") -> None:
    """Load the stand-in into this process so that pynvml's ``CDLL("libnvidia-ml.so.1")`` finds it
    (the loader matches the library's soname); for benchmarks, which cannot restart themselves."""
    import ctypes

    ctypes.CDLL(os.fspath(libs[variant] / "libnvidia-ml.so.1"), mode=ctypes.RTLD_GLOBAL)
