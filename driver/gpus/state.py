"""What the GPUs of a run are doing now, for the environment block and the noise checks.

Read through the existing NVML boundary (driver.gpus.nvml, driver.gpus.reader): names, the
driver's version, SM and memory clocks, temperature, the clock-event (throttle) reasons, the
thermal violation counter (nanoseconds the clocks were held down by heat since the driver loaded:
read before and after a run, its growth is throttling *during* the run, however brief) and the
compute processes. A query the GPU or the binding does not support gives None, never a guess;
NVML itself unavailable gives each GPU an ``error``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

# nvml.h constants (the same in every binding)
CLOCK_SM, CLOCK_MEM = 1, 2
TEMPERATURE_GPU = 0
#: Clock-event (throttle) reason bits, nvml.h ``nvmlClocksEventReason*``.
THROTTLE_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown", 0x100: "display_clock_setting",
}
#: Reasons that mean the GPU was slowed by heat (or the hardware's own slowdown).
THERMAL = ("hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown")
PERF_POLICY_THERMAL = 1  # nvmlPerfPolicyType_t: nvmlDeviceGetViolationStatus's thermal counter
_REASON_QUERIES = ("nvmlDeviceGetCurrentClocksEventReasons",
                   "nvmlDeviceGetCurrentClocksThrottleReasons")


def gpu_states(indices: Sequence[int]) -> list[dict[str, Any]]:
    """One state per NVML index in *indices*; with NVML unavailable, each says why."""
    from driver.gpus.nvml import NvmlUnavailable, nvml_session

    try:
        with nvml_session() as nvml:
            return [gpu_state(nvml, index) for index in indices]
    except NvmlUnavailable as exc:
        return [{"index": index, "error": str(exc)} for index in indices]


def gpu_state(nvml: Any, index: int) -> dict[str, Any]:
    """Every field of one GPU that NVML answers (None for those it does not)."""
    from driver.gpus.nvml import driver_version, error_text, nvml_errors
    from driver.gpus.reader import GpuReader

    errors = nvml_errors(nvml) + (AttributeError, TypeError)
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except errors as exc:
        return {"index": index, "error": error_text(exc)}

    def ask(query: Callable[[], Any]) -> Any:
        try:
            return query()
        except errors:
            return None

    reader = GpuReader(nvml, handle)
    processes = ask(reader.processes)
    return {
        "index": index,
        "name": _text(ask(lambda: nvml.nvmlDeviceGetName(handle))),
        "uuid": _text(ask(lambda: nvml.nvmlDeviceGetUUID(handle))),
        "driver_version": driver_version(nvml) or None,
        "sm_clock_mhz": ask(lambda: int(nvml.nvmlDeviceGetClockInfo(handle, CLOCK_SM))),
        "memory_clock_mhz": ask(lambda: int(nvml.nvmlDeviceGetClockInfo(handle, CLOCK_MEM))),
        "max_sm_clock_mhz": ask(lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, CLOCK_SM))),
        "temperature_c": ask(lambda: int(nvml.nvmlDeviceGetTemperature(handle,
                                                                        TEMPERATURE_GPU))),
        "throttle_reasons": ask(lambda: throttle_reasons(nvml, handle)),
        "thermal_violation_ns": ask(lambda: int(
            nvml.nvmlDeviceGetViolationStatus(handle, PERF_POLICY_THERMAL).violationTime)),
        "process_pids": None if processes is None else sorted({int(p.pid) for p in processes}),
    }


def throttle_reasons(nvml: Any, handle: Any) -> list[str] | None:
    """The names of the clock-event reasons active now; None when the binding has no query."""
    for name in _REASON_QUERIES:
        query = getattr(nvml, name, None)
        if query is not None:
            bits = int(query(handle))
            return [reason for bit, reason in THROTTLE_REASONS.items() if bits & bit]
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None
