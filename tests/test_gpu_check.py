"""benchmarks/gpu_check.py, the check prepared for a GPU machine: what of it can run without a GPU.

Its task config is valid for the driver, its arithmetic is right, and its sampler-cost part runs
through the real pynvml over the C stand-in for libnvidia-ml.so.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks import gpu_check
from conftest import REPO
from tests.nvml_stub import Scenario, nvml_libs  # noqa: F401 (a fixture)

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def test_its_task_config_is_valid(tmp_path: Path) -> None:
    (tmp_path / "task_config.toml").write_text(gpu_check.task_config(2048, 2.0))
    listing = subprocess.run([sys.executable, "-m", "driver", "check"], cwd=tmp_path, text=True,
                             capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert listing.returncode == 0, listing.stdout + listing.stderr


def test_it_compares_against_reserved_plus_context_and_nvidia_smi() -> None:
    alloc = {"alloc.gpu_memory_usage_max": 2550.0, "alloc.reserved_mib": 2048.0,
             "alloc.smi_mib": 2550.0}
    context = {"context.gpu_memory_usage_max": 504.0, "context.reserved_mib": 2.0}
    lines = gpu_check.compare(alloc, context)
    assert "= 2550.0 MiB" in lines[0]  # 2048 reserved + (504 - 2) context
    assert lines[1].endswith("= 1.000x (target 1.00 +- 0.02): PASS")
    assert lines[2].endswith("= 1.000x (target 1.00 +- 0.02): PASS")
    unlisted = gpu_check.compare({**alloc, "alloc.smi_mib": -1.0}, context)
    assert "n/a (nvidia-smi did not list the task)" in unlisted[2] and unlisted[2].endswith("FAIL")


def test_sampler_cost_runs_through_the_real_binding(tmp_path: Path, nvml_libs: dict[str, Path]) -> None:
    scenario = Scenario(tmp_path, driver="550.54.15")
    scenario.gpu(name="NVIDIA H100 80GB HBM3", total_mib=81559, reserved_mib=530)
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--sampler-only", "--reads", "20"], cwd=tmp_path, text=True,
        capture_output=True, timeout=120, env={**os.environ, **scenario.env(nvml_libs)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2. cost: 20 reads of GPU 0 (NVIDIA H100 80GB HBM3, driver 550.54.15)" in done.stdout
    assert "ms wall" in done.stdout and "!" not in done.stdout
    assert scenario.calls()["init"] == scenario.calls()["shutdown"] >= 2


def test_without_a_cuda_gpu_it_says_so(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300)
    if done.returncode == 0:  # a machine with a CUDA GPU: the check ran for real
        assert "RATIO gpu_memory_vs_torch" in done.stdout, done.stdout
    else:
        assert "gpu_check: needs a CUDA GPU" in done.stderr, done.stderr
