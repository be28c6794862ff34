"""GPU runs end to end: the real CLI, the real pynvml (nvidia-ml-py), and the C stand-in for
``libnvidia-ml.so.1`` (tests/nvml_stub) with one scenario per test: GPUs, memory, processes,
faults and driver age. Each test is one way a real driver answers (issue 12)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from conftest import REPO, CliResult, script
from tests.nvml_stub import Scenario, nvml_libs  # noqa: F401 (a fixture)

H100 = {"name": "NVIDIA H100 80GB HBM3", "total_mib": 81559}
Libs = dict[str, Path]


def gpu_task(write_config: Any, *steps: object) -> None:
    """A task running tests/scripts/gpu_steps.py with *steps*."""
    command = " ".join(["{python}", script("gpu_steps.py"), *map(str, steps)])
    write_config(
        "[tasks.g]\n"
        f"command_to_execute = '{command}'\n"
        "patterns = ['speed: (\\S+)']\n"
        "metrics = ['speed']\n"
        "compute_method = ['last']\n"
    )


def listed_task(tmp_path: Path, write_config: Any, *gpus: int, extra: tuple[str, ...] = ()) -> None:
    """The task writes its pid and waits until NVML listed it on each of *gpus*."""
    gpu_task(write_config, f"pid:{tmp_path / 'task.pid'}",
             *[f"wait:{tmp_path / f'seen{g}'}" for g in gpus], *extra)


def mine(scenario: Scenario, tmp_path: Path, gpu: int, used_mib: int) -> None:
    """The task's process holds *used_mib* on *gpu*."""
    scenario.process(gpu, pid_file=tmp_path / "task.pid", used_mib=used_mib,
                     seen_file=tmp_path / f"seen{gpu}")


def gpu_details(run: CliResult) -> dict[int, dict[str, Any]]:
    return {g["index"]: g for g in run.record["memory"]["gpu_nvml"]["gpus"]}


def timeline(tmp_path: Path) -> list[dict[str, str]]:
    path = sorted(tmp_path.glob("bench-runs/g/*/timeline.csv"))[-1]
    return list(csv.DictReader(path.open()))


def assert_shut_down(scenario: Scenario) -> None:
    calls = scenario.calls()
    assert calls["init"] >= 1 and calls["init"] == calls["shutdown"], calls


def test_healthy_run_counts_the_task_only_and_hands_gpus_over_by_uuid(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path)
    for _ in range(3):
        scenario.gpu(**H100, reserved_mib=530, util=40)
    mine(scenario, tmp_path, 2, 2048)
    mine(scenario, tmp_path, 0, 1024)
    scenario.process(2, pid=1, used_mib=30000)  # another user's job on the same GPU
    listed_task(tmp_path, write_config, 2, 0, extra=("env",))
    env = scenario.env(nvml_libs) | {"CUDA_VISIBLE_DEVICES": "2,0"}
    run = cli("--task-name", "g", "--num-gpus", "2", env=env)
    assert run.returncode == 0, run.stderr
    assert f"env: {scenario.uuids[2]},{scenario.uuids[0]} PCI_BUS_ID" in run.stdout
    assert run.result["g.gpu_memory_usage_max"] == 2048.0
    record = run.record
    assert record["gpus"] == [2, 0] and record["errors"] == []
    gpus = gpu_details(run)
    assert gpus[2]["task_max_mib"] == 2048.0 and gpus[2]["source"] == "task processes"
    assert gpus[2]["used_max_mib"] == 32048.0  # allocated by everyone, reserved memory excluded
    assert gpus[2]["reserved_mib"] == 530.0
    assert record["memory"]["gpu_nvml"]["driver_version"] == "550.54.15"
    assert_shut_down(scenario)


def test_the_task_tree_is_counted_on_each_gpu(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100)
    scenario.gpu(**H100)
    scenario.process(1, pid_file=tmp_path / "parent.pid", used_mib=700, seen_file=tmp_path / "seen1")
    scenario.process(0, pid_file=tmp_path / "child.pid", used_mib=300, seen_file=tmp_path / "seen0")
    scenario.process(0, pid=1, used_mib=5000)  # another user's job on the same GPU
    gpu_task(write_config, f"pid:{tmp_path / 'parent.pid'}", f"wait:{tmp_path / 'seen1'}", "child",
             f"pid:{tmp_path / 'child.pid'}", f"wait:{tmp_path / 'seen0'}")
    run = cli("--task-name", "g", "--num-gpus", "2", env=scenario.env(nvml_libs))
    assert run.returncode == 0, run.stderr
    gpus = gpu_details(run)
    assert (gpus[0]["task_max_mib"], gpus[1]["task_max_mib"]) == (300.0, 700.0)
    assert gpus[0]["used_max_mib"] == 5300.0  # the device counts the other user, the task does not
    assert run.result["g.gpu_memory_usage_max"] == 700.0  # the largest amount on one GPU
    header = list(timeline(tmp_path)[0])
    assert header[3:] == ["gpu0_used_mib", "gpu0_task_mib", "gpu0_util_pct",
                          "gpu1_used_mib", "gpu1_task_mib", "gpu1_util_pct"]


def test_a_cpu_run_never_loads_nvml(tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs) -> None:
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100)
    gpu_task(write_config, "env")
    run = cli("--task-name", "g", "--num-gpus", "0", env=scenario.env(nvml_libs))
    assert run.returncode == 0, run.stderr
    assert "env:  <unset>" in run.stdout  # CUDA_VISIBLE_DEVICES="" hides every GPU
    assert scenario.calls() == {}
    assert not [k for k in run.result if "gpu_memory" in k]


def test_reserved_memory_is_not_counted_as_used(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    """530 MiB reserved + 1024 allocated read 1554 with the unversioned query; 1024 with v2."""
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100, reserved_mib=530)
    scenario.process(0, pid=1, used_mib=1024)  # not the task's: only device memory counts it
    scenario.process(0, pid_file=tmp_path / "task.pid", used_mib=0, seen_file=tmp_path / "seen0")
    listed_task(tmp_path, write_config, 0)
    run = cli("--task-name", "g", "--num-gpus", "1", env=scenario.env(nvml_libs))
    assert run.returncode == 0, run.stderr
    assert {r["gpu0_used_mib"] for r in timeline(tmp_path)} == {"1024.0"}
    assert gpu_details(run)[0]["memory_query"] == "nvmlDeviceGetMemoryInfo_v2"


def test_driver_before_r510_uses_the_v2_process_query(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    """No _v3 process query: pynvml's unversioned wrapper raises NVMLLibraryMismatchError, which
    is not an NVMLError; the readings of every tick must not be lost to it."""
    scenario = Scenario(tmp_path, driver="470.239.06")
    scenario.gpu(**H100, util=55)
    mine(scenario, tmp_path, 0, 2048)
    listed_task(tmp_path, write_config, 0)
    run = cli("--task-name", "g", "--num-gpus", "1", env=scenario.env(nvml_libs, "r470"))
    assert run.returncode == 0, run.stderr
    assert run.result["g.gpu_memory_usage_max"] == 2048.0
    gpu = gpu_details(run)[0]
    assert gpu["process_query"] == "nvmlDeviceGetComputeRunningProcesses_v2"
    assert gpu["memory_query"] == "nvmlDeviceGetMemoryInfo"  # no v2 memory query either
    assert gpu["util_max_pct"] == 55.0 and gpu["source"] == "task processes"
    assert not [e for e in run.record["errors"] if "Mismatch" in e], run.record["errors"]


def test_driver_without_a_readable_process_query_reports_device_memory_and_why(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path, driver="440.118.02")
    scenario.gpu(**H100, base_mib=300)
    mine(scenario, tmp_path, 0, 2048)
    gpu_task(write_config, f"pid:{tmp_path / 'task.pid'}", "hold:0.4")
    run = cli("--task-name", "g", "--num-gpus", "1", env=scenario.env(nvml_libs, "r440"))
    assert run.returncode == 0, run.stderr
    assert run.result["g.gpu_memory_usage_max"] == 2348.0  # device memory: 300 + 2048
    assert gpu_details(run)[0]["source"] == "device used"
    notes = [e for e in run.record["errors"] if e.startswith("GPU 0: gpu_memory_usage_*")]
    assert len(notes) == 1, run.record["errors"]
    assert "neither nvmlDeviceGetComputeRunningProcesses_v3 nor _v2" in notes[0]
    assert "may include driver-reserved memory" in notes[0]


def test_scrambled_r535_process_entries_are_not_trusted(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    """Early R535 drivers write 32-byte entries that nvidia-ml-py reads as 24-byte ones: the
    task's entry (second) comes out as pid 0. No confident 0, no "PID namespace" story."""
    scenario = Scenario(tmp_path, driver="535.54.03")
    scenario.gpu(**H100, reserved_mib=530)
    scenario.process(0, pid=1, used_mib=3000)  # another user's process, listed first
    mine(scenario, tmp_path, 0, 2048)
    listed_task(tmp_path, write_config, 0)
    run = cli("--task-name", "g", "--num-gpus", "1", env=scenario.env(nvml_libs, "r535_early"))
    assert run.returncode == 0, run.stderr
    gpu = gpu_details(run)[0]
    assert gpu["source"] == "device used" and "not plausible (pid 0)" in gpu["per_process_unavailable"]
    assert run.result["g.gpu_memory_usage_max"] == 5048.0  # device memory, said to be so
    errors = " ".join(run.record["errors"])
    assert "early R535" in errors and "without driver-reserved memory" in errors
    assert "PID namespace" not in errors


def test_one_gpu_without_per_process_figures_keeps_the_others_on_task_figures(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100)
    scenario.gpu(**H100, base_mib=700, processes_error="NOT_SUPPORTED")
    mine(scenario, tmp_path, 0, 2048)
    scenario.process(0, pid=1, used_mib=30000)  # another user's 30,000 MiB on GPU 0
    listed_task(tmp_path, write_config, 0)
    run = cli("--task-name", "g", "--num-gpus", "2", env=scenario.env(nvml_libs))
    assert run.returncode == 0, run.stderr
    assert run.result["g.gpu_memory_usage_max"] == 2048.0  # GPU 0's task figure, not 32048
    gpus = gpu_details(run)
    assert gpus[0]["source"] == "task processes" and gpus[1]["source"] == "device used"
    assert run.record["memory"]["gpu_nvml"]["source"] == "mixed"
    notes = [e for e in run.record["errors"] if "gpu_memory_usage_*" in e]
    assert len(notes) == 1 and notes[0].startswith("GPU 1:") and "Not Supported" in notes[0]


def test_an_inaccessible_gpu_does_not_block_the_healthy_ones(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100)
    scenario.gpu(handle_error="NO_PERMISSION")
    scenario.gpu(handle_error="GPU_IS_LOST")
    scenario.gpu(**H100)
    mine(scenario, tmp_path, 0, 1000)
    mine(scenario, tmp_path, 3, 1000)
    listed_task(tmp_path, write_config)
    env = scenario.env(nvml_libs)
    explicit = cli("--task-name", "g", "--gpus", "0", env=env)
    assert explicit.returncode == 0, explicit.stderr
    assert explicit.record["memory"]["gpu_nvml"]["unavailable_gpus"] == [
        "1: cannot be opened: Insufficient Permissions (NVMLError_NoPermission)",
        "2: cannot be opened: GPU is lost (NVMLError_GpuIsLost)",
    ]
    two = cli("--task-name", "g", "--num-gpus", "2", env=env)
    assert two.returncode == 0, two.stderr
    assert two.record["gpus"] == [0, 3]  # the first two usable GPUs
    refused = cli("--task-name", "g", "--gpus", "1", env=env)
    assert refused.returncode == 3
    assert "GPU 1 cannot be used: NVML cannot open it: Insufficient Permissions" in refused.stderr
    too_many = cli("--task-name", "g", "--num-gpus", "3", env=env)
    assert too_many.returncode == 3 and "only 2 are available" in too_many.stderr
    assert "2: cannot be opened: GPU is lost" in too_many.stderr
    assert_shut_down(scenario)


def test_a_gpu_lost_mid_run_stops_its_own_columns_only(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    lost, seen0 = tmp_path / "lost1", tmp_path / "seen0"
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100)
    scenario.gpu(**H100, lost_file=lost)
    mine(scenario, tmp_path, 0, 1500)
    mine(scenario, tmp_path, 1, 700)
    # Lose GPU 1 once both were sampled, then let GPU 0 be listed in two more ticks: the second
    # one comes after the tick in which GPU 1 was found lost.
    listed_task(tmp_path, write_config, 0, 1, extra=(
        f"touch:{lost}", f"rm:{seen0}", f"wait:{seen0}", f"rm:{seen0}", f"wait:{seen0}"))
    run = cli("--task-name", "g", "--num-gpus", "2", env=scenario.env(nvml_libs))
    assert run.returncode == 0, run.stderr
    gpus = gpu_details(run)
    assert "GPU is lost (NVMLError_GpuIsLost)" in gpus[1]["lost"]
    assert gpus[1]["task_max_mib"] == 700.0 and gpus[0]["task_max_mib"] == 1500.0
    assert run.result["g.gpu_memory_usage_max"] == 1500.0
    rows = timeline(tmp_path)
    last = rows[-1]
    assert last["gpu0_used_mib"] and not last["gpu1_used_mib"] and not last["gpu1_util_pct"]
    assert any(e.startswith("GPU 1 was lost at ") for e in run.record["errors"])


def test_mig_is_refused_before_anything_starts_unless_sampling_is_off(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path)
    scenario.gpu(name="NVIDIA A100-SXM4-40GB", total_mib=40960, mig=1)
    scenario.gpu(name="NVIDIA A100-SXM4-40GB", total_mib=40960, mig=0)
    instance = "MIG-5c1d0e39-3a6f-5d49-8b3b-0b9e8c1d2f3a"
    scenario.mig(0, instance)
    gpu_task(write_config, f"pid:{tmp_path / 'task.pid'}", "env")
    env = scenario.env(nvml_libs)
    whole = cli("--task-name", "g", "--gpus", "0", env=env)
    assert whole.returncode == 3, whole.stderr
    assert "GPU 0 (NVIDIA A100-SXM4-40GB, GPU-" in whole.stderr and "is in MIG mode" in whole.stderr
    by_instance = cli("--task-name", "g", "--num-gpus", "1",
                      env=env | {"CUDA_VISIBLE_DEVICES": instance})
    assert by_instance.returncode == 3 and "is a MIG instance" in by_instance.stderr
    assert "Traceback" not in whole.stderr + by_instance.stderr
    assert not (tmp_path / "task.pid").exists()  # refused before the command started
    unsampled = cli("--task-name", "g", "--num-gpus", "1", "--no-gpu-sampling",
                    env=env | {"CUDA_VISIBLE_DEVICES": instance})
    assert unsampled.returncode == 0, unsampled.stderr
    assert f"env: {instance} PCI_BUS_ID" in unsampled.stdout
    assert unsampled.record["gpus"] == [0]  # the instance's GPU
    healthy = cli("--task-name", "g", "--gpus", "1", env=env)
    assert healthy.returncode == 0, healthy.stderr
    assert_shut_down(scenario)


def test_without_nvml_the_sampler_refuses_and_no_sampling_hands_over_unchecked(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path)
    scenario.lines[0] += " init_error=DRIVER_NOT_LOADED"
    scenario.gpu(**H100)
    gpu_task(write_config, f"pid:{tmp_path / 'task.pid'}", "env")
    env = scenario.env(nvml_libs)
    refused = cli("--task-name", "g", "--num-gpus", "1", env=env)
    assert refused.returncode == 3
    assert "NVML not available: nvmlInit() failed: Driver Not Loaded" in refused.stderr
    assert "--no-gpu-sampling" in refused.stderr and "--num-gpus 0" in refused.stderr
    assert not (tmp_path / "task.pid").exists()
    unchecked = cli("--task-name", "g", "--num-gpus", "1", "--no-gpu-sampling", env=env)
    assert unchecked.returncode == 0, unchecked.stderr
    assert "env: 0 PCI_BUS_ID" in unchecked.stdout
    assert not [k for k in unchecked.result if "gpu_memory" in k]


def test_a_hung_gpu_query_does_not_delay_the_cpu_sampler(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    block = tmp_path / "block"
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100, block_file=block)
    mine(scenario, tmp_path, 0, 1024)
    seen = tmp_path / "seen0"
    listed_task(tmp_path, write_config, 0, extra=(
        f"touch:{block}", f"wait:{block}.blocked", "hold:0.5", f"rm:{block}",
        f"rm:{seen}", f"wait:{seen}"))
    run = cli("--task-name", "g", "--num-gpus", "1", "--sample-interval", "0.05",
              env=scenario.env(nvml_libs))
    assert run.returncode == 0, run.stderr
    rows = timeline(tmp_path)
    assert all(r["cpu_rss_mib"] for r in rows)  # the CPU sampler kept its ticks
    assert any(not r["gpu0_task_mib"] for r in rows[1:-1])  # while the GPU read hung
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(set(times))  # one row per tick, in order
    assert any("was still reading an earlier tick" in e for e in run.record["errors"])
    assert run.result["g.gpu_memory_usage_max"] == 1024.0


FAILING_SAMPLER = '''
from driver.errors import ConfigError

def bench_driver_register_samplers():
    def factory(settings):
        raise ConfigError("the zz sampler refuses this run")
    return {"zz_refuses": factory}
'''


def test_nvml_is_shut_down_when_a_later_sampler_refuses_the_run(
    tmp_path: Path, write_config: Any, cli: Any, nvml_libs: Libs
) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "zz_refuses.py").write_text(FAILING_SAMPLER)
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100)
    gpu_task(write_config, f"pid:{tmp_path / 'task.pid'}")
    run = cli("--task-name", "g", "--num-gpus", "1", env=scenario.env(nvml_libs))
    assert run.returncode == 3 and "the zz sampler refuses this run" in run.stderr
    assert not (tmp_path / "task.pid").exists()
    assert_shut_down(scenario)


def test_nvml_is_shut_down_when_the_driver_is_terminated_mid_run(
    tmp_path: Path, write_config: Any, nvml_libs: Libs
) -> None:
    scenario = Scenario(tmp_path)
    scenario.gpu(**H100)
    mine(scenario, tmp_path, 0, 512)
    listed_task(tmp_path, write_config, 0, extra=("hold:60",))
    env = {**os.environ, "PYTHONPATH": str(REPO), **scenario.env(nvml_libs)}
    driver = subprocess.Popen([sys.executable, "-m", "driver", "--task-name", "g", "--num-gpus",
                               "1"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while not (tmp_path / "seen0").exists() and driver.poll() is None:
            assert time.monotonic() < deadline, "the task was never listed by NVML"
            time.sleep(0.005)  # waiting for the stand-in to have listed the task
        driver.send_signal(signal.SIGTERM)
        _, stderr = driver.communicate(timeout=60)
    finally:
        driver.kill()
    assert driver.returncode == 143, stderr
    assert_shut_down(scenario)
