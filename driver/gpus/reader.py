"""Reading one GPU through NVML the way real drivers answer.

* Device memory comes from ``nvmlDeviceGetMemoryInfo_v2`` where the driver has it (R510 and
  later): its ``used`` is allocated memory only and ``reserved`` is what the driver and firmware
  set aside. The older ``nvmlDeviceGetMemoryInfo`` reports ``used`` as reserved + allocated.
* Processes come from ``nvmlDeviceGetComputeRunningProcesses_v3``, else ``_v2`` (drivers before
  R510 lack ``_v3``; pynvml's unversioned wrapper then raises ``NVMLLibraryMismatchError``).
* Each query falls back once, for good, when the driver lacks the newer function.
* A process list is checked before it is believed: a driver whose process-info layout differs
  from the binding's (early R535 drivers write 32-byte entries where nvidia-ml-py reads 24-byte
  ones) yields pid 0 or 0xFFFFFFFF, or more memory than the GPU has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from driver.gpus.nvml import (ARGUMENT_VERSION_MISMATCH, BYTES_PER_MIB, FUNCTION_NOT_FOUND,
                              error_code, nvml_errors)

MEMORY_V2 = "nvmlDeviceGetMemoryInfo_v2"
MEMORY_V1 = "nvmlDeviceGetMemoryInfo"
PROCESS_QUERIES = ("nvmlDeviceGetComputeRunningProcesses_v3",
                   "nvmlDeviceGetComputeRunningProcesses_v2")
_BAD_PIDS = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class Memory:
    """One reading of device memory, MiB."""

    used_mib: float  # allocated memory; with the v1 query, reserved memory too
    reserved_mib: float | None  # None: the driver does not say (v1 query)
    total_mib: float


class GpuReader:
    """The NVML queries of one open GPU (*handle*), with the driver's newest functions."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self.nvml = nvml
        self.handle = handle
        self.errors = nvml_errors(nvml)
        v2 = getattr(nvml, "nvmlMemory_v2", None)  # the struct version; older bindings lack it
        self.memory_query = MEMORY_V2 if v2 is not None else MEMORY_V1
        self._process_queries = [q for q in PROCESS_QUERIES if hasattr(nvml, q)]

    @property
    def process_query(self) -> str:
        """The process query in use; "" when the driver has none the binding can read."""
        return self._process_queries[0] if self._process_queries else ""

    def memory(self) -> Memory:
        """Device memory now; raises the binding's error when NVML fails."""
        if self.memory_query == MEMORY_V2:
            try:
                m = self.nvml.nvmlDeviceGetMemoryInfo(self.handle, version=self.nvml.nvmlMemory_v2)
                return Memory(m.used / BYTES_PER_MIB, m.reserved / BYTES_PER_MIB,
                              m.total / BYTES_PER_MIB)
            except self.errors as exc:
                if error_code(exc) not in (FUNCTION_NOT_FOUND, ARGUMENT_VERSION_MISMATCH):
                    raise
                self.memory_query = MEMORY_V1  # a driver before R510
        m = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
        return Memory(m.used / BYTES_PER_MIB, None, m.total / BYTES_PER_MIB)

    def processes(self) -> list[Any] | None:
        """The compute processes (``.pid``, ``.usedGpuMemory`` in bytes or None); None when the
        driver has no process query the binding can read. Raises the binding's error."""
        while self._process_queries:
            try:
                return list(getattr(self.nvml, self._process_queries[0])(self.handle))
            except self.errors as exc:
                if error_code(exc) != FUNCTION_NOT_FOUND:
                    raise
                self._process_queries.pop(0)
        return None

    def utilisation_pct(self) -> float:
        """Percent of time a kernel ran over NVML's last sample period."""
        return float(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)


def implausible(processes: Sequence[Any], total_mib: float) -> str:
    """Why *processes* cannot be a true process list of a GPU of *total_mib*; "" if they can."""
    for process in processes:
        if process.pid in _BAD_PIDS:
            return f"pid {process.pid}"
        used = process.usedGpuMemory
        if used is not None and used / BYTES_PER_MIB > total_mib:
            return (f"{used / BYTES_PER_MIB:.0f} MiB for pid {process.pid} on a GPU of "
                    f"{total_mib:.0f} MiB")
    return ""
