"""The GPU sampler plugin (plugins/gpu_nvml/) on the Python test double of the binding and real
processes: the sampler's own logic. tests/test_gpu_e2e.py runs it through the real binding."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import TickCounter
from driver import proctree
from driver.errors import ConfigError
from driver.gpus.nvml import MODULE_ENV
from driver.plugins import DEFAULT_PLUGINS
from driver.sampling import RunExit, SamplingSettings, SamplingThread
from plugins import gpu_nvml
from plugins.gpu_nvml import GpuNvmlSampler, RunningStats, make_sampler
from tests import fake_nvml

# A child that starts a grandchild; the grandchild lives until the test closes their stdin.
CHILD = (
    "import subprocess, sys\n"
    "g = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'])\n"
    "print(g.pid, flush=True)\n"
    "sys.exit(g.wait())\n"
)


class Tree:
    """A real two-process task tree, and an outsider process that is not part of it."""

    def __init__(self) -> None:
        self.child = subprocess.Popen(
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.child.stdout is not None
        self.grandchild = int(self.child.stdout.readline())
        self.outsider = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
        )

    def pids(self) -> list[int]:
        return [self.child.pid] + proctree.descendants(self.child.pid)

    def end(self) -> None:
        """Let every process exit, and reap them (again: a no-op)."""
        for proc in (self.child, self.outsider):
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()
        assert self.child.stdout is not None
        self.child.stdout.close()


@pytest.fixture(autouse=True)
def fresh_fake() -> Iterator[None]:
    """A test that fails half-way must not leave the fake initialised for the next one."""
    yield
    fake_nvml._state.refcount = 0


@pytest.fixture
def tree() -> Iterator[Tree]:
    t = Tree()
    yield t
    t.end()


def use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: dict[str, Any]) -> None:
    for name, value in fake_nvml.scenario_env(tmp_path / "nvml.json", scenario).items():
        monkeypatch.setenv(name, value)


def device(*processes: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": "NVIDIA Fake", "total_mib": 81920, "processes": list(processes), **fields}


def sampler(gpus: tuple[int, ...]) -> GpuNvmlSampler:
    """A started sampler (NVML held until its ``stop``)."""
    made = make_sampler(SamplingSettings(gpus=gpus))
    assert made is not None
    made.start()
    assert not made.start_error
    return made


def test_registered_as_a_default_plugin() -> None:
    assert "plugins.gpu_nvml" in DEFAULT_PLUGINS
    assert gpu_nvml.bench_driver_register_samplers() == {"gpu_nvml": make_sampler}


def test_not_used_without_gpus_or_with_sampling_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "no_such_nvml_module")  # would fail if NVML were touched
    assert make_sampler(SamplingSettings()) is None
    assert make_sampler(SamplingSettings(gpus=(0,), options=argparse.Namespace(no_gpu_sampling=True))) is None


def test_refuses_the_run_without_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "tests.fake_nvml")
    monkeypatch.delenv(fake_nvml.SCENARIO_ENV, raising=False)
    with pytest.raises(ConfigError, match="^NVML not available: "):
        make_sampler(SamplingSettings(gpus=(0,)))


def test_refuses_a_gpu_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(tmp_path, monkeypatch, {"devices": [device()]})
    with pytest.raises(ConfigError, match="GPU '3' was assigned but NVML does not see it"):
        make_sampler(SamplingSettings(gpus=(0, 3)))
    assert fake_nvml._state.refcount == 0


def test_counts_only_the_task_tree(tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gpu0 = device(
        {"pid": tree.child.pid, "used_mib": 300},
        {"pid": tree.grandchild, "used_mib": 200},
        {"pid": tree.outsider.pid, "used_mib": 1000},  # someone else's job on the same GPU
        base_used_mib=50, util_pct=40,
    )
    gpu1 = device({"pid": tree.grandchild, "used_mib": 700}, util_pct=90)
    use(tmp_path, monkeypatch, {"devices": [gpu0, gpu1]})
    s = sampler((0, 1))
    assert s.columns == (
        "gpu0_used_mib", "gpu0_task_mib", "gpu0_util_pct",
        "gpu1_used_mib", "gpu1_task_mib", "gpu1_util_pct",
    )
    row = s.sample(tree.pids())
    assert row == {
        "gpu0_used_mib": 1550.0, "gpu0_task_mib": 500.0, "gpu0_util_pct": 40.0,
        "gpu1_used_mib": 700.0, "gpu1_task_mib": 700.0, "gpu1_util_pct": 90.0,
    }
    summary = s.summary(RunExit())
    assert summary.metrics["gpu_memory_usage_max"] == 700.0
    assert summary.details["source"] == "task processes"
    assert summary.details["peak_total_mib"] == 1200.0
    assert summary.errors == []
    assert [g["source"] for g in summary.details["gpus"]] == ["task processes"] * 2


def test_max_is_over_gpus_and_ticks_not_a_mean_of_maxima(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mib = tmp_path / "mib"
    use(tmp_path, monkeypatch, {"devices": [
        device({"pid": tree.grandchild, "used_mib_file": str(mib)}),
        device({"pid": tree.child.pid, "used_mib": 500}),
    ]})
    s = sampler((0, 1))
    for value in ("100", "900"):
        mib.write_text(value)
        s.sample(tree.pids())
    summary = s.summary(RunExit())
    # Samples per GPU: GPU 0 100, 900; GPU 1 500, 500. The old driver's "max" was the mean of the
    # per-GPU maxima (700); the largest amount one GPU held is 900.
    assert summary.metrics == {
        "gpu_memory_usage_max": 900.0,
        "gpu_memory_usage_mean": 500.0,
        "gpu_memory_usage_std": pytest.approx(282.843, abs=1e-3),
    }
    per_gpu = {g["index"]: g for g in summary.details["gpus"]}
    assert (per_gpu[0]["task_max_mib"], per_gpu[1]["task_max_mib"]) == (900.0, 500.0)
    assert summary.details["peak_total_mib"] == 1400.0


def test_a_finished_process_stops_counting(tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(tmp_path, monkeypatch, {"devices": [device({"pid": tree.grandchild, "used_mib": 800})]})
    s = sampler((0,))
    assert s.sample(tree.pids())["gpu0_task_mib"] == 800.0
    pids = tree.pids()
    tree.end()
    assert s.sample(pids)["gpu0_task_mib"] == 0.0
    assert s.summary(RunExit()).metrics["gpu_memory_usage_mean"] == 400.0


def test_a_failing_read_is_reported_once_and_sampling_goes_on(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "failing"
    use(tmp_path, monkeypatch, {
        "fail_while_file_exists": str(flag), "fail_error": "Unknown",
        "devices": [device({"pid": tree.grandchild, "used_mib": 256})],
    })
    s = sampler((0,))
    rows = [s.sample(tree.pids())]
    flag.touch()
    rows += [s.sample(tree.pids()), s.sample(tree.pids())]
    flag.unlink()
    rows.append(s.sample(tree.pids()))
    s.stop()
    summary = s.summary(RunExit())
    assert [r.get("gpu0_task_mib") for r in rows] == [256.0, None, None, 256.0]  # empty, not 0
    failures = [e for e in summary.errors if "nvmlDeviceGetMemoryInfo_v2 failed" in e]
    assert len(failures) == 1 and failures[0].startswith("GPU 0: nvmlDeviceGetMemoryInfo_v2 failed 2 times")
    assert failures[0].endswith("Unknown Error (NVMLError_Unknown)")
    assert summary.metrics["gpu_memory_usage_max"] == 256.0


def test_a_lost_gpu_is_not_queried_again(tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "lost"
    use(tmp_path, monkeypatch, {"fail_while_file_exists": str(flag),
                                "devices": [device({"pid": tree.grandchild, "used_mib": 256})]})
    s = sampler((0,))
    assert s.sample(tree.pids())["gpu0_task_mib"] == 256.0
    flag.touch()
    assert s.sample(tree.pids()) == {}
    flag.unlink()  # a lost GPU stays lost (it needs a reset): no more queries, no half rows
    calls = fake_nvml.calls()
    assert s.sample(tree.pids()) == {} and fake_nvml.calls() == calls
    s.stop()
    summary = s.summary(RunExit())
    assert summary.details["gpus"][0]["lost"].endswith("GPU is lost (NVMLError_GpuIsLost)")
    assert summary.metrics["gpu_memory_usage_max"] == 256.0


def test_all_samples_failing_leaves_metrics_out_without_nan(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag = tmp_path / "gpu-lost"
    use(tmp_path, monkeypatch, {"fail_while_file_exists": str(flag), "devices": [device()]})
    s = sampler((0,))
    flag.touch()
    assert s.sample(tree.pids()) == {}
    summary = s.summary(RunExit())
    assert summary.metrics == {}
    assert any("gpu_memory_usage_max/mean/std are left out" in e for e in summary.errors)
    json.dumps({"metrics": summary.metrics, "details": summary.details}, allow_nan=False)


@pytest.mark.parametrize(
    "fields, entry, why",
    [
        ({"processes_error": "NotSupported"}, {"used_mib": 300}, "Not Supported"),
        ({}, {"used_mib": None}, "per-process memory as not available"),
    ],
)
def test_without_per_process_figures_device_memory_is_used_and_said(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fields: dict[str, Any], entry: dict[str, Any], why: str,
) -> None:
    gpu = device({"pid": tree.grandchild, **entry}, base_used_mib=1000, **fields)
    use(tmp_path, monkeypatch, {"devices": [gpu]})
    s = sampler((0,))
    row = s.sample(tree.pids())
    assert "gpu0_task_mib" not in row and row["gpu0_used_mib"] >= 1000.0
    summary = s.summary(RunExit())
    assert summary.details["source"] == "device used"
    assert summary.metrics["gpu_memory_usage_max"] == row["gpu0_used_mib"]
    assert any(why in e and "counts every process on that GPU" in e for e in summary.errors)


def test_pids_from_another_pid_namespace_are_pointed_out(
    tree: Tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ghost = 4_194_000
    if os.path.exists(f"/proc/{ghost}"):
        pytest.skip(f"pid {ghost} exists here")
    gpu = device({"pid": ghost, "used_mib": 900, "even_if_dead": True})
    use(tmp_path, monkeypatch, {"devices": [gpu]})
    s = sampler((0,))
    assert s.sample(tree.pids())["gpu0_task_mib"] == 0.0
    summary = s.summary(RunExit())
    assert any("PID namespace" in e for e in summary.errors)


def test_nvml_is_held_from_start_to_stop_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use(tmp_path, monkeypatch, {"devices": [device()]})
    made = make_sampler(SamplingSettings(gpus=(0,)))
    assert made is not None and fake_nvml._state.refcount == 0  # the factory let go again
    made.start()
    assert fake_nvml._state.refcount == 1
    made.stop()
    made.stop()
    made.summary(RunExit())
    assert fake_nvml._state.refcount == 0


def test_real_tree_found_by_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: the sampling thread, the real process tree, the fake binding's /proc lookup."""
    marker = "gpu-user-7f3a"
    code = f"import sys; sys.stdin.read()  # {marker}"
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    use(tmp_path, monkeypatch, {"devices": [
        device({"cmdline_contains": marker, "used_mib": 1234}, util_pct=75)
    ]})
    s = sampler((0,))
    s.stop()  # the sampling thread starts it again, on the sampler's own thread
    gpu_reads = TickCounter()
    read = s.sample
    monkeypatch.setattr(s, "sample", lambda pids: (read(pids), gpu_reads.tick())[0])
    thread = SamplingThread([s], 0.01, tmp_path / "timeline.csv", lambda: [child.pid])
    thread.start()
    gpu_reads.wait(3)
    assert child.stdin is not None
    child.stdin.close()
    child.wait()
    thread.stop()
    summary = s.summary(RunExit())
    assert summary.metrics["gpu_memory_usage_max"] == 1234.0
    assert 0 < summary.metrics["gpu_memory_usage_mean"] <= 1234.0
    util = summary.details["gpus"][0]
    assert util["util_max_pct"] == 75.0


def test_running_stats_merge_equals_one_stream() -> None:
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    one, left, right = RunningStats(), RunningStats(), RunningStats()
    for i, v in enumerate(values):
        one.add(v)
        (left if i < 3 else right).add(v)
    merged = left.merge(right)
    assert (merged.n, merged.max) == (one.n, one.max)
    assert merged.mean == pytest.approx(one.mean) and merged.std == pytest.approx(one.std)
    assert RunningStats().figures("task", "mib") == {}
