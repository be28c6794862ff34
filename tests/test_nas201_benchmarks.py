"""The NAS-Bench-201 benchmark scripts run (tiny settings) and print their ratio line; timings
are never asserted (benchmarks/ prints them)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from test_benchmarks_smoke import RATIO_LINE


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1", **env})


@pytest.mark.parametrize(("argv", "name"), [
    (("benchmarks/nas201_training.py", "--quick", "--dataset", "ImageNet16-120"),
     "nas201_training"),
    (("benchmarks/nas201_gpu_throughput.py", "--device", "cpu", "--dataset", "ImageNet16-120",
      "--batch-size", "4", "--steps", "1", "--repeat", "1"), "nas201_gpu_throughput"),
])
def test_script_prints_its_ratio(argv: tuple[str, ...], name: str) -> None:
    done = run_script(*argv)
    assert done.returncode == 0, done.stdout + done.stderr
    found = RATIO_LINE.findall(done.stdout)
    assert [n for n, _, _ in found] == [name], done.stdout
    assert "images/s" in done.stdout


def test_the_gpu_script_says_when_there_is_no_gpu() -> None:
    done = run_script("benchmarks/nas201_gpu_throughput.py", CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 2 and "no CUDA device is visible" in done.stderr
