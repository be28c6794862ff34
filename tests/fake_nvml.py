"""A Python test double of the ``pynvml`` functions bench-driver uses, scripted by a JSON scenario.

It is for fast unit tests of bench-driver's own logic. It is NOT a faithful NVML: it has the
binding's names, signatures, error classes and return shapes, but none of the ways a real driver
differs (missing versioned functions, ``NVMLLibraryMismatchError``, struct layouts, the two-call
process query). End-to-end GPU tests run the real binding over the C stand-in for
``libnvidia-ml.so.1`` in tests/nvml_stub/ instead.

Select it with ``BENCH_DRIVER_NVML_MODULE=tests.fake_nvml`` (see driver/gpus/nvml.py) and name the
scenario file with ``BENCH_FAKE_NVML``; without that variable ``nvmlInit`` fails as on a machine
without the NVIDIA driver (``NVMLError_LibraryNotFound``). The scenario is read at ``nvmlInit``::

    {
      "init_error": "LibraryNotFound",        # optional: nvmlInit raises NVMLError_<this>
      "fail_after_calls": 12,                  # optional: after 12 device queries, every query
      "fail_for_calls": 5,                     #   fails (for 5 queries, then works again;
      "fail_error": "GpuIsLost",               #   default: for ever) with NVMLError_<this>
      "fail_while_file_exists": "/tmp/x",      # optional: every query fails while /tmp/x exists
      "devices": [
        {"name": "NVIDIA H200", "uuid": "GPU-1111...", "total_mib": 143771,
         "base_used_mib": 500,                 # memory used on the device by no listed process
         "reserved_mib": 530,                  # set aside by the driver (v1 "used" includes it)
         "util_pct": 40,
         "open_error": "NoPermission",         # optional: nvmlDeviceGetHandleByIndex raises
         "processes_error": "NotSupported",    # optional: the per-process query raises
         "sm_clock_mhz": 1980, "memory_clock_mhz": 2619, "max_sm_clock_mhz": 1980,
         "temperature_c": 45,                  # optional (absent: the query is NotSupported)
         "throttle_reasons": 64,               # optional clock-event reason bits (64: HW thermal)
         "throttle_reasons_file": "/tmp/bits", #   or re-read from a file on every query
         "thermal_violation_ns": 0,            # optional thermal violation counter (or _file)
         "processes": [                        # compute processes; only live ones are listed
           {"pid": 1234, "used_mib": 100},
           {"pid_file": "/tmp/pid", "used_mib": 100},     # the pid written in a file
           {"cmdline_contains": "gpu-marker-7", "used_mib_file": "/tmp/mib"},
           {"pid": 1234, "used_mib": null},    # usedGpuMemory unavailable (None)
           {"pid": 1234, "used_mib": 5, "mark_listed": "/tmp/seen"}  # touched once
         ]}                                    #   nvmlDeviceGetComputeRunningProcesses listed it
      ]
    }

A process entry is listed while its pid is alive (not a zombie): that is how a real subprocess
tree "uses" GPU memory (``"even_if_dead": true`` lists it regardless, as NVML lists host pids
inside a container). ``used_mib_file`` is re-read on every query (a missing file counts as the
process not holding a context). The device's used memory is ``base_used_mib`` plus every listed
process's memory (plus ``reserved_mib`` in the unversioned memory query, as on R510+ drivers).
"""

from __future__ import annotations

import json
import os
import string
import sys
import threading
from dataclasses import dataclass
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25
NVML_ERROR_UNKNOWN = 999
NVML_VALUE_NOT_AVAILABLE_UINT = 0xFFFFFFFF

SCENARIO_ENV = "BENCH_FAKE_NVML"
nvmlMemory_v2 = 0x02000028  # sizeof(nvmlMemory_v2_t) | 2 << 24, as in pynvml
_MIB = 1 << 20


class NVMLLibraryMismatchError(Exception):
    """As in pynvml: raised by unversioned wrappers; NOT an NVMLError (never raised here)."""


class NVMLError(Exception):
    """As in pynvml: ``NVMLError(code)`` builds the subclass for that code."""

    _valClassMapping: dict[int, type] = {}
    _errcode_to_string = {
        NVML_ERROR_UNINITIALIZED: "Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
        NVML_ERROR_NOT_FOUND: "Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
        NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        NVML_ERROR_TIMEOUT: "Timeout",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        NVML_ERROR_UNKNOWN: "Unknown Error",
    }
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return self._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _make_error_classes() -> None:
    """NVML_ERROR_GPU_IS_LOST -> NVMLError_GpuIsLost, as pynvml names them."""
    module = sys.modules[__name__]
    for name in [n for n in dir(module) if n.startswith("NVML_ERROR_")]:
        words = string.capwords(name.replace("NVML_ERROR_", ""), "_").replace("_", "")
        code = getattr(module, name)

        def new(cls: type, *args: Any, _code: int = code) -> NVMLError:
            return NVMLError.__new__(cls, _code)  # type: ignore[arg-type]

        cls = type(f"NVMLError_{words}", (NVMLError,), {"__new__": new})
        cls.__module__ = __name__
        setattr(module, cls.__name__, cls)
        NVMLError._valClassMapping[code] = cls


_make_error_classes()


@dataclass
class _Memory:
    total: int
    free: int
    used: int


@dataclass
class _Memory_v2:
    version: int
    total: int
    reserved: int
    free: int
    used: int


@dataclass
class _Utilization:
    gpu: int
    memory: int


@dataclass
class _Process:
    pid: int
    usedGpuMemory: int | None  # noqa: N815 (pynvml's name)
    gpuInstanceId: int = NVML_VALUE_NOT_AVAILABLE_UINT  # noqa: N815
    computeInstanceId: int = NVML_VALUE_NOT_AVAILABLE_UINT  # noqa: N815


@dataclass(frozen=True)
class _Handle:
    index: int


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refcount = 0
        self.scenario: dict[str, Any] = {}
        self.calls = 0


_state = _State()


def _error_code(name: str) -> int:
    cls = getattr(sys.modules[__name__], f"NVMLError_{name}", None)
    if cls is None:
        raise ValueError(f"fake_nvml scenario: unknown NVML error {name!r}")
    return next(code for code, c in NVMLError._valClassMapping.items() if c is cls)


def nvmlInit() -> None:
    path = os.environ.get(SCENARIO_ENV)
    if not path:
        raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
    with open(path, encoding="utf-8") as f:
        scenario = json.load(f)
    if scenario.get("init_error"):
        raise NVMLError(_error_code(scenario["init_error"]))
    with _state.lock:
        if _state.refcount == 0:
            _state.scenario = scenario
            _state.calls = 0
        _state.refcount += 1


def nvmlInitWithFlags(flags: int) -> None:
    nvmlInit()


def nvmlShutdown() -> None:
    with _state.lock:
        if _state.refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        _state.refcount -= 1


def _query() -> dict[str, Any]:
    """Count one device query and fail it when the scenario says so."""
    with _state.lock:
        if _state.refcount == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        scenario = _state.scenario
        _state.calls += 1
        calls = _state.calls
    code = _error_code(scenario.get("fail_error", "GpuIsLost"))
    after = scenario.get("fail_after_calls")
    if after is not None and calls > after:
        span = scenario.get("fail_for_calls")
        if span is None or calls <= after + span:
            raise NVMLError(code)
    flag = scenario.get("fail_while_file_exists")
    if flag and os.path.exists(flag):
        raise NVMLError(code)
    return scenario


def _device(handle: Any) -> dict[str, Any]:
    devices = _query()["devices"]
    if not isinstance(handle, _Handle) or handle.index >= len(devices):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    device: dict[str, Any] = devices[handle.index]
    return device


def nvmlDeviceGetCount() -> int:
    return len(_query()["devices"])


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    devices = _query()["devices"]
    if not 0 <= index < len(devices):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    if devices[index].get("open_error"):
        raise NVMLError(_error_code(devices[index]["open_error"]))
    return _Handle(index)


def nvmlDeviceGetName(handle: _Handle) -> str:
    return str(_device(handle).get("name", "NVIDIA Fake GPU"))


def nvmlDeviceGetUUID(handle: _Handle) -> str:
    default = f"GPU-00000000-0000-0000-0000-{handle.index:012d}"
    return str(_device(handle).get("uuid", default))


def nvmlDeviceGetMemoryInfo(handle: _Handle, version: int | None = None) -> _Memory | _Memory_v2:
    device = _device(handle)
    total = int(device.get("total_mib", 81920) * _MIB)
    reserved = int(device.get("reserved_mib", 0) * _MIB)
    used = int(device.get("base_used_mib", 0) * _MIB)
    used += sum(p.usedGpuMemory or 0 for p in _live_processes(device))
    used = min(used, total - reserved)
    if version:
        if version != nvmlMemory_v2:
            raise NVMLError(NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        return _Memory_v2(version, total, reserved, total - reserved - used, used)
    return _Memory(total=total, free=total - reserved - used, used=reserved + used)


def nvmlDeviceGetUtilizationRates(handle: _Handle) -> _Utilization:
    device = _device(handle)
    return _Utilization(gpu=int(device.get("util_pct", 0)), memory=int(device.get("mem_util_pct", 0)))


def nvmlDeviceGetComputeRunningProcesses_v3(handle: _Handle) -> list[_Process]:
    device = _device(handle)
    if device.get("processes_error"):
        raise NVMLError(_error_code(device["processes_error"]))
    return _live_processes(device, mark=True)


nvmlDeviceGetComputeRunningProcesses_v2 = nvmlDeviceGetComputeRunningProcesses_v3
nvmlDeviceGetComputeRunningProcesses = nvmlDeviceGetComputeRunningProcesses_v3


def nvmlDeviceGetHandleByUUID(uuid: str) -> _Handle:
    devices = _query()["devices"]
    for index in range(len(devices)):
        if nvmlDeviceGetUUID(_Handle(index)) == uuid:
            return _Handle(index)
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetMigMode(device: _Handle) -> list[int]:
    entry = _device(device)
    if "mig" not in entry:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return [int(entry["mig"]), int(entry["mig"])]


def _reading(handle: _Handle, key: str) -> int:
    """A scripted per-device number (``KEY_file``: re-read each time); NotSupported if absent."""
    device = _device(handle)
    if f"{key}_file" in device:
        with open(device[f"{key}_file"], encoding="utf-8") as f:
            return int(f.read().strip())
    if key not in device:
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return int(device[key])


def nvmlDeviceGetClockInfo(handle: _Handle, clock: int) -> int:
    return _reading(handle, {1: "sm_clock_mhz", 2: "memory_clock_mhz"}.get(clock, "-"))


def nvmlDeviceGetMaxClockInfo(handle: _Handle, clock: int) -> int:
    return _reading(handle, {1: "max_sm_clock_mhz"}.get(clock, "-"))


def nvmlDeviceGetTemperature(handle: _Handle, sensor: int) -> int:
    return _reading(handle, "temperature_c")


def nvmlDeviceGetCurrentClocksEventReasons(handle: _Handle) -> int:
    return _reading(handle, "throttle_reasons")


class _ViolationTime:
    def __init__(self, violation_ns: int) -> None:
        self.referenceTime = 0
        self.violationTime = violation_ns


def nvmlDeviceGetViolationStatus(handle: _Handle, policy: int) -> _ViolationTime:
    if policy != 1:  # NVML_PERF_POLICY_THERMAL: the only counter scripted
        raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
    return _ViolationTime(_reading(handle, "thermal_violation_ns"))


def nvmlSystemGetDriverVersion() -> str:
    return str(_query().get("driver", "550.54.15"))


def _live_processes(device: dict[str, Any], mark: bool = False) -> list[_Process]:
    found = []
    for entry in device.get("processes", []):
        used = _used_bytes(entry)
        if used is False:
            continue
        pids = _pids(entry)
        found += [_Process(pid=pid, usedGpuMemory=used) for pid in pids]  # type: ignore[arg-type]
        if mark and pids and entry.get("mark_listed"):
            open(entry["mark_listed"], "a").close()  # tells a workload it has been counted
    return found


def _used_bytes(entry: dict[str, Any]) -> int | None | bool:
    """Bytes used, None for "not available", False when the process holds no context now."""
    if "used_mib_file" in entry:
        try:
            with open(entry["used_mib_file"], encoding="utf-8") as f:
                return int(float(f.read().strip()) * _MIB)
        except (OSError, ValueError):
            return False
    mib = entry.get("used_mib", 0)
    return None if mib is None else int(mib * _MIB)


def _pids(entry: dict[str, Any]) -> list[int]:
    if "pid" in entry:
        candidates = [int(entry["pid"])]
    elif "pid_file" in entry:
        try:
            with open(entry["pid_file"], encoding="utf-8") as f:
                candidates = [int(f.read().strip())]
        except (OSError, ValueError):
            return []
    else:
        candidates = _pids_by_cmdline(str(entry["cmdline_contains"]))
    if entry.get("even_if_dead"):  # as NVML shows host pids inside a container's PID namespace
        return candidates
    return [pid for pid in candidates if _alive(pid)]


def _pids_by_cmdline(needle: str) -> list[int]:
    wanted = needle.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if wanted in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


def scenario_env(path: str | os.PathLike[str], scenario: dict[str, Any]) -> dict[str, str]:
    """Write *scenario* to *path*; return the environment that makes bench-driver use it."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(scenario, f)
    return {"BENCH_DRIVER_NVML_MODULE": __name__, SCENARIO_ENV: os.fspath(path)}


def calls() -> int:
    """How many device queries this process made since the last first nvmlInit (for tests)."""
    return _state.calls
