"""GPU assignment (driver/gpus/assign.py) and the NVML boundary (driver/gpus/nvml.py), on the
Python test double of the binding; tests/test_gpu_e2e.py runs the real binding."""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path
from typing import Any

import pytest

from driver.errors import ConfigError
from driver.gpus.assign import GpuAssignment, assign_gpus, child_environment
from driver.gpus.nvml import MODULE_ENV, NvmlUnavailable, list_gpus, load_nvml, nvml_session, shutdown
from driver.sampling import SamplingSettings
from plugins.gpu_nvml import make_sampler
from tests import fake_nvml

UUIDS = [f"GPU-{n}{n}{n}{n}aaaa-0000-4000-8000-00000000000{n}" for n in range(4)]
FOUR_GPUS = {
    "devices": [
        {"name": f"NVIDIA Fake {n}", "uuid": UUIDS[n], "total_mib": 81920} for n in range(4)
    ]
}


@pytest.fixture
def four_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with four GPUs, seen through the fake NVML binding."""
    _use(tmp_path, monkeypatch, FOUR_GPUS)


def _use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: dict[str, Any]) -> None:
    for name, value in fake_nvml.scenario_env(tmp_path / "nvml.json", scenario).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake binding without a scenario: nvmlInit fails as on a machine without a GPU."""
    monkeypatch.setenv(MODULE_ENV, "tests.fake_nvml")
    monkeypatch.delenv(fake_nvml.SCENARIO_ENV, raising=False)


def test_zero_gpus_is_a_cpu_run_without_touching_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "no_such_nvml_module")  # would fail if it were imported
    assignment = assign_gpus(0, None, {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert assignment == GpuAssignment((), "")
    assert child_environment(assignment) == {"CUDA_VISIBLE_DEVICES": ""}


def test_first_gpus_of_the_machine(four_gpus: None) -> None:
    assignment = assign_gpus(2, None, {})
    assert assignment == GpuAssignment((0, 1), f"{UUIDS[0]},{UUIDS[1]}")  # handed over by UUID
    assert assignment.count == 2 and assignment.devices == (UUIDS[0], UUIDS[1])
    assert child_environment(assignment) == {
        "CUDA_VISIBLE_DEVICES": f"{UUIDS[0]},{UUIDS[1]}",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }


def test_cuda_visible_devices_indices_are_the_pool(four_gpus: None) -> None:
    assert assign_gpus(1, None, {"CUDA_VISIBLE_DEVICES": "3,1"}) == GpuAssignment((3,), UUIDS[3])
    assert assign_gpus(2, None, {"CUDA_VISIBLE_DEVICES": " 2, 3"}).indices == (2, 3)


def test_cuda_visible_devices_uuids_map_to_nvml_indices(four_gpus: None) -> None:
    pool = f"{UUIDS[2]},{UUIDS[0][:12]}"  # a full UUID and a unique prefix, as CUDA accepts
    assignment = assign_gpus(2, None, {"CUDA_VISIBLE_DEVICES": pool})
    assert assignment.indices == (2, 0)
    assert assignment.cuda_visible_devices == f"{UUIDS[2]},{UUIDS[0]}"  # full UUIDs


def test_pool_ends_at_a_negative_index_as_in_cuda(four_gpus: None) -> None:
    assert assign_gpus(1, None, {"CUDA_VISIBLE_DEVICES": "2,-1,3"}).indices == (2,)
    with pytest.raises(ConfigError, match=r"asks for 2 GPUs but only 1 is available"):
        assign_gpus(2, None, {"CUDA_VISIBLE_DEVICES": "2,-1,3"})
    with pytest.raises(ConfigError, match=r"only 0 are available.*limits the pool to GPUs: none"):
        assign_gpus(1, None, {"CUDA_VISIBLE_DEVICES": "-1"})


def test_explicit_gpus(four_gpus: None) -> None:
    assert assign_gpus(2, [0, 3], {}) == GpuAssignment((0, 3), f"{UUIDS[0]},{UUIDS[3]}")
    assert assign_gpus(1, [3], {"CUDA_VISIBLE_DEVICES": "1,3"}) == GpuAssignment((3,), UUIDS[3])
    uuid_pool = {"CUDA_VISIBLE_DEVICES": f"{UUIDS[1]},{UUIDS[3]}"}
    assert assign_gpus(1, [3], uuid_pool).cuda_visible_devices == UUIDS[3]


def test_explicit_gpu_outside_the_pool_is_refused(four_gpus: None) -> None:
    with pytest.raises(ConfigError) as caught:
        assign_gpus(1, [0], {"CUDA_VISIBLE_DEVICES": "1,3"})
    message = str(caught.value)
    assert "--gpus 0: GPU 0 is not available" in message
    assert "CUDA_VISIBLE_DEVICES='1,3' limits the pool to GPUs: 1, 3" in message


def test_too_many_gpus_lists_what_exists(four_gpus: None) -> None:
    with pytest.raises(ConfigError) as caught:
        assign_gpus(5, None, {})
    message = str(caught.value)
    assert "num_gpus=5 asks for 5 GPUs but only 4 are available" in message
    assert "NVML sees 4 GPUs" in message
    for n in range(4):
        assert f"{n}: NVIDIA Fake {n} ({UUIDS[n]}, 81920 MiB)" in message


def test_too_many_gpus_for_the_pool_names_the_pool(four_gpus: None) -> None:
    with pytest.raises(ConfigError) as caught:
        assign_gpus(2, None, {"CUDA_VISIBLE_DEVICES": "1"})
    message = str(caught.value)
    assert "only 1 is available" in message
    assert "CUDA_VISIBLE_DEVICES='1' limits the pool to GPUs: 1" in message
    assert "widen CUDA_VISIBLE_DEVICES" in message


def test_explicit_index_beyond_the_machine(four_gpus: None) -> None:
    with pytest.raises(ConfigError, match=r"GPU 7 is not available\. NVML sees 4 GPUs"):
        assign_gpus(1, [7], {})


@pytest.mark.parametrize(
    "pool, problem",
    [
        ("7", "entry '7' is not a GPU of this machine"),
        ("GPU-ffff", "entry 'GPU-ffff' matches no GPU"),
        ("GPU-", "entry 'GPU-' matches several GPUs"),
        ("MIG-GPU-1111/1/0", "names a GPU NVML does not see"),
        ("MIG-5c1d0e39-3a6f", "is not a MIG instance NVML can open: Not Found"),
        ("gpu0", "neither a GPU index, a GPU UUID \\(GPU-...\\) nor a MIG UUID"),
        ("1,1", "names GPU 1 twice"),
    ],
)
def test_bad_pool_entries(four_gpus: None, pool: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        assign_gpus(1, None, {"CUDA_VISIBLE_DEVICES": pool})


@pytest.mark.parametrize(
    "num, explicit, problem",
    [
        (-1, None, "num_gpus must be 0 or more"),
        (2, [0, 0], "names GPU 0 twice"),
        (1, [-2], "GPU indices are 0 or more"),
        (1, [0, 1], "names 2 GPU\\(s\\) but num_gpus is 1"),
    ],
)
def test_bad_requests(four_gpus: None, num: int, explicit: list[int] | None, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        assign_gpus(num, explicit, {})


def test_mig_instances_in_the_pool_are_handed_over_as_given(four_gpus: None) -> None:
    instance = f"MIG-{UUIDS[1]}/1/0"  # the older MIG-GPU-<uuid>/<gi>/<ci> form
    assignment = assign_gpus(1, None, {"CUDA_VISIBLE_DEVICES": instance})
    assert assignment == GpuAssignment((1,), instance)


def test_a_gpu_nvml_cannot_open_is_skipped_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    devices = [dict(d) for d in FOUR_GPUS["devices"]]
    devices[0]["open_error"] = "NoPermission"
    _use(tmp_path, monkeypatch, {"devices": devices})
    assert assign_gpus(1, None, {"CUDA_VISIBLE_DEVICES": "0,2"}) == GpuAssignment((2,), UUIDS[2])
    with pytest.raises(ConfigError) as caught:
        assign_gpus(1, [0], {})
    message = str(caught.value)
    assert "GPU 0 cannot be used: NVML cannot open it: Insufficient Permissions" in message
    assert "0: cannot be opened: Insufficient Permissions (NVMLError_NoPermission)" in message


def test_without_nvml_gpus_are_handed_over_unchecked(no_nvml: None) -> None:
    """assign_gpus never refuses for want of NVML: the GPU sampler's factory does (below)."""
    assert assign_gpus(2, None, {}) == GpuAssignment((0, 1), "0,1", False)
    pool = {"CUDA_VISIBLE_DEVICES": "4,5,6"}
    assert assign_gpus(2, None, pool) == GpuAssignment((4, 5), "4,5", False)
    assert assign_gpus(1, [6], pool).cuda_visible_devices == "6"
    uuids = assign_gpus(1, None, {"CUDA_VISIBLE_DEVICES": UUIDS[1]})
    assert (uuids.indices, uuids.cuda_visible_devices, uuids.count) == ((), UUIDS[1], 1)
    with pytest.raises(ConfigError, match="lists only 3"):
        assign_gpus(4, None, pool)
    with pytest.raises(ConfigError, match="is not within"):
        assign_gpus(1, [0], pool)


def test_without_nvml_the_gpu_sampler_refuses_the_run(no_nvml: None) -> None:
    with pytest.raises(ConfigError) as caught:
        make_sampler(SamplingSettings(gpus=(0, 1), gpu_devices=("0", "1")))
    message = str(caught.value)
    assert isinstance(caught.value, NvmlUnavailable)
    assert message.startswith("NVML not available: nvmlInit() failed: NVML Shared Library Not Found")
    assert "A run with 2 GPUs needs NVML" in message
    assert "--no-gpu-sampling" in message and "--num-gpus 0" in message
    assert make_sampler(SamplingSettings(gpu_devices=("0",), options=argparse.Namespace(no_gpu_sampling=True))) is None


def test_nvml_failing_at_start_hands_over_unchecked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(tmp_path, monkeypatch, {**FOUR_GPUS, "fail_after_calls": 0})
    assert assign_gpus(1, None, {}) == GpuAssignment((0,), "0", False)
    assert fake_nvml._state.refcount == 0  # NVML was shut down again
    with pytest.raises(NvmlUnavailable, match="counting the GPUs failed: GPU is lost"):
        make_sampler(SamplingSettings(gpus=(0,)))
    assert fake_nvml._state.refcount == 0


def test_missing_binding_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODULE_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with pytest.raises(NvmlUnavailable, match=r"pip install nvidia-ml-py"):
        load_nvml()


def test_unknown_binding_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODULE_ENV, "no_such_nvml_module")
    with pytest.raises(NvmlUnavailable, match="BENCH_DRIVER_NVML_MODULE='no_such_nvml_module'"):
        load_nvml()


def test_real_binding_without_gpu_is_not_available(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml  # noqa: F401  (nvidia-ml-py, a dependency: never skipped)
    monkeypatch.delenv(MODULE_ENV, raising=False)
    try:
        nvml = load_nvml()
    except NvmlUnavailable as exc:
        assert str(exc).startswith("NVML not available: nvmlInit() failed: ")
    else:
        shutdown(nvml)
        pytest.skip("this machine has a working NVML")


def test_list_gpus(four_gpus: None) -> None:
    with nvml_session() as nvml:
        gpus = list_gpus(nvml)
    assert [(g.index, g.uuid, g.total_mib) for g in gpus] == [(n, UUIDS[n], 81920.0) for n in range(4)]


# The double keeps the binding's names, signatures and error classes (and no more: see its
# docstring); the C stand-in in tests/nvml_stub is what behaves like a driver.

FAKED = [
    "nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetHandleByUUID", "nvmlDeviceGetName", "nvmlDeviceGetUUID",
    "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMigMode",
    "nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2",
    "nvmlDeviceGetComputeRunningProcesses_v3", "nvmlSystemGetDriverVersion",
]


@pytest.mark.parametrize("name", FAKED)
def test_fake_functions_match_pynvml_signatures(name: str) -> None:
    import pynvml
    real = list(inspect.signature(getattr(pynvml, name)).parameters)
    fake = list(inspect.signature(getattr(fake_nvml, name)).parameters)
    assert fake == real


def test_fake_errors_match_pynvml() -> None:
    import pynvml
    assert fake_nvml.nvmlMemory_v2 == pynvml.nvmlMemory_v2
    assert not issubclass(pynvml.NVMLLibraryMismatchError, pynvml.NVMLError)
    assert not issubclass(fake_nvml.NVMLLibraryMismatchError, fake_nvml.NVMLError)
    for code, cls in fake_nvml.NVMLError._valClassMapping.items():
        real = pynvml.NVMLError(code)
        assert type(real).__name__ == cls.__name__
        assert str(fake_nvml.NVMLError(code)) == str(real)
        assert isinstance(cls(), fake_nvml.NVMLError) and cls().value == code


def test_fake_fails_for_a_while_then_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(tmp_path, monkeypatch, {**FOUR_GPUS, "fail_after_calls": 2, "fail_for_calls": 2})
    with nvml_session() as nvml:
        outcomes = []
        for _ in range(6):
            try:
                nvml.nvmlDeviceGetCount()
                outcomes.append("ok")
            except fake_nvml.NVMLError_GpuIsLost:  # type: ignore[attr-defined]
                outcomes.append("lost")
    assert outcomes == ["ok", "ok", "lost", "lost", "ok", "ok"]


def test_fake_requires_init(four_gpus: None) -> None:
    with pytest.raises(fake_nvml.NVMLError_Uninitialized):  # type: ignore[attr-defined]
        fake_nvml.nvmlDeviceGetCount()
