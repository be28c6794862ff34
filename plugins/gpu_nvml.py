"""GPU memory and utilisation of the task's GPUs, read through NVML on the sampling thread.

Each tick, for every GPU handed to the task (NVML index ``i``), the timeline gets:

* ``gpu<i>_used_mib``: memory used on the device by everyone (``nvmlDeviceGetMemoryInfo``);
* ``gpu<i>_task_mib``: memory held by the task's own processes: the sum of ``usedGpuMemory``
  of the compute processes (``nvmlDeviceGetComputeRunningProcesses``) whose pid is in the
  task's process tree this tick. Another user's process on the same GPU does not count;
* ``gpu<i>_util_pct``: the percentage of time a kernel ran, over NVML's last sample period.

A failed read leaves its cell empty and is reported once (with a count) in the summary's errors;
the run goes on. Summary metrics, in MiB, over every (tick, GPU) sample of the task's memory:

* ``gpu_memory_usage_max``: the largest amount one GPU held for the task at any tick;
* ``gpu_memory_usage_mean`` and ``gpu_memory_usage_std`` (population, ddof=0): mean and spread
  of those same per-GPU samples, from the first tick to the last.

When per-process figures are unavailable on any of the GPUs (the driver does not support the
query, MIG, usedGpuMemory reported as not available) the three metrics use device memory used
instead, which counts other processes too, and the errors say so. No value is ever NaN: a metric
without samples is left out and the errors say why. docs/memory.md is the user's version.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from driver.errors import ConfigError
from driver.hookspecs import hookimpl
from driver.gpus.nvml import BYTES_PER_MIB, GpuInfo, error_text, list_gpus, load_nvml, shutdown
from driver.sampling import RunExit, Sampler, SamplerSummary, SamplingSettings

TASK = "task processes"
DEVICE = "device used"


@dataclass
class RunningStats:
    """Count, mean, population variance (Welford) and maximum of a stream of numbers."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    max: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)
        self.max = x if self.n == 1 else max(self.max, x)

    def merge(self, other: RunningStats) -> RunningStats:
        """The statistics of both streams together (Chan et al.)."""
        if other.n == 0:
            return RunningStats(self.n, self.mean, self.m2, self.max)
        if self.n == 0:
            return RunningStats(other.n, other.mean, other.m2, other.max)
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return RunningStats(n, mean, m2, max(self.max, other.max))

    @property
    def std(self) -> float:
        return math.sqrt(max(self.m2, 0.0) / self.n) if self.n else 0.0

    def figures(self, prefix: str, unit: str) -> dict[str, float]:
        """``{prefix_max_unit: .., prefix_mean_unit: .., prefix_std_unit: ..}``; {} when empty."""
        if not self.n:
            return {}
        return {
            f"{prefix}_max_{unit}": round(self.max, 3),
            f"{prefix}_mean_{unit}": round(self.mean, 3),
            f"{prefix}_std_{unit}": round(self.std, 3),
        }


@dataclass
class _Gpu:
    """One assigned GPU: its handle and what was seen on it."""

    info: GpuInfo
    handle: Any
    used: RunningStats = field(default_factory=RunningStats)
    task: RunningStats = field(default_factory=RunningStats)
    util: RunningStats = field(default_factory=RunningStats)
    no_per_process: str = ""  # why per-process figures were unavailable, once seen
    unseen_pids: int = 0  # listed processes whose pid does not exist here (PID namespaces)

    def details(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"index": self.info.index, "name": self.info.name,
                                   "uuid": self.info.uuid, "total_mib": round(self.info.total_mib, 3)}
        figures.update(self.task.figures("task", "mib"))
        figures.update(self.used.figures("used", "mib"))
        figures.update(self.util.figures("util", "pct"))
        figures["samples"] = max(self.task.n, self.used.n)
        if self.no_per_process:
            figures["per_process_unavailable"] = self.no_per_process
        return figures


class GpuNvmlSampler(Sampler):
    """Reads memory used, the task's own memory and utilisation of each assigned GPU."""

    name = "gpu_nvml"

    def __init__(self, nvml: Any, gpus: Sequence[GpuInfo], handles: Sequence[Any]) -> None:
        self.nvml = nvml
        self.gpus = [_Gpu(info, handle) for info, handle in zip(gpus, handles)]
        self.columns = tuple(
            f"gpu{g.info.index}_{c}" for g in self.gpus for c in ("used_mib", "task_mib", "util_pct")
        )
        self.ticks = 0
        self.peak_total = {TASK: 0.0, DEVICE: 0.0}
        self._failures: dict[tuple[int, str, str], list[Any]] = {}
        self._t0 = time.monotonic()
        self._closed = False

    def start(self) -> None:
        self._t0 = time.monotonic()

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        tree = set(pids)
        row: dict[str, float] = {}
        totals: dict[str, float | None] = {TASK: 0.0, DEVICE: 0.0}
        for gpu in self.gpus:
            used, task, util = self._read(gpu, tree)
            prefix = f"gpu{gpu.info.index}_"
            for key, value, stats in (("used_mib", used, gpu.used), ("task_mib", task, gpu.task),
                                      ("util_pct", util, gpu.util)):
                if value is not None:
                    row[prefix + key] = value
                    stats.add(value)
            for source, value in ((TASK, task), (DEVICE, used)):
                total = totals[source]
                totals[source] = None if value is None or total is None else total + value
        for source, total in totals.items():
            if total is not None:
                self.peak_total[source] = max(self.peak_total[source], total)
        self.ticks += 1
        return row

    def _read(self, gpu: _Gpu, tree: set[int]) -> tuple[float | None, float | None, float | None]:
        nvml = self.nvml
        memory = self._call(gpu, nvml.nvmlDeviceGetMemoryInfo)
        rates = self._call(gpu, nvml.nvmlDeviceGetUtilizationRates)
        used = round(memory.used / BYTES_PER_MIB, 3) if memory is not None else None
        util = float(rates.gpu) if rates is not None else None
        return used, self._task_mib(gpu, tree), util

    def _task_mib(self, gpu: _Gpu, tree: set[int]) -> float | None:
        """The task's memory on *gpu*, or None when NVML cannot say."""
        try:
            processes = self.nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)
        except self.nvml.NVMLError as exc:
            if type(exc).__name__ in ("NVMLError_NotSupported", "NVMLError_NoPermission"):
                gpu.no_per_process = gpu.no_per_process or f"per-process query: {error_text(exc)}"
            else:
                self._failed(gpu, "nvmlDeviceGetComputeRunningProcesses", exc)
            return None
        total = 0
        mine = [p for p in processes if p.pid in tree]
        for process in mine:
            if process.usedGpuMemory is None:
                gpu.no_per_process = gpu.no_per_process or "usedGpuMemory not available"
                return None
            total += process.usedGpuMemory
        if not mine and processes and not gpu.unseen_pids:
            gpu.unseen_pids = sum(not os.path.exists(f"/proc/{p.pid}") for p in processes)
        return round(total / BYTES_PER_MIB, 3)

    def _call(self, gpu: _Gpu, function: Callable[[Any], Any]) -> Any:
        try:
            return function(gpu.handle)
        except self.nvml.NVMLError as exc:
            self._failed(gpu, function.__name__, exc)
            return None

    def _failed(self, gpu: _Gpu, function: str, exc: BaseException) -> None:
        key = (gpu.info.index, function, error_text(exc))
        record = self._failures.setdefault(key, [0, time.monotonic() - self._t0])
        record[0] += 1

    def summary(self, exit: RunExit) -> SamplerSummary:
        self.close()
        errors = [
            f"GPU {index}: {function} failed {count} time{'s' if count != 1 else ''} "
            f"(first at {first_s:.1f} s): {text}"
            for (index, function, text), (count, first_s) in self._failures.items()
        ]
        source = DEVICE if any(g.no_per_process or not g.task.n for g in self.gpus) else TASK
        stats = RunningStats()
        for gpu in self.gpus:
            stats = stats.merge(gpu.task if source == TASK else gpu.used)
        errors += self._source_notes(source, stats)
        metrics: dict[str, float] = {}
        if stats.n:
            metrics = {
                "gpu_memory_usage_max": round(stats.max, 3),
                "gpu_memory_usage_mean": round(stats.mean, 3),
                "gpu_memory_usage_std": round(stats.std, 3),
            }
        details = {
            "source": source,
            "ticks": self.ticks,
            "samples": stats.n,
            "peak_total_mib": round(self.peak_total[source], 3),
            "gpus": [g.details() for g in self.gpus],
        }
        return SamplerSummary(metrics, details, errors)

    def _source_notes(self, source: str, stats: RunningStats) -> list[str]:
        notes = []
        if source == DEVICE:
            why = "; ".join(
                f"GPU {g.info.index}: {g.no_per_process or 'no per-process sample succeeded'}"
                for g in self.gpus if g.no_per_process or not g.task.n
            )
            notes.append(
                f"per-process GPU memory unavailable ({why}): gpu_memory_usage_* report device "
                f"memory used, which includes other processes on those GPUs"
            )
        elif stats.n and stats.max == 0 and any(g.unseen_pids for g in self.gpus):
            notes.append(
                "NVML listed GPU processes whose pids do not exist in this PID namespace "
                "(a container without --pid=host?), so none could be matched to the task: "
                "gpu_memory_usage_* read 0; see gpu<i>_used_mib in timeline.csv for the device"
            )
        if not stats.n:
            notes.append(
                "no GPU memory sample succeeded, so gpu_memory_usage_max/mean/std are left out"
            )
        return notes

    def close(self) -> None:
        """Release NVML (once)."""
        if not self._closed:
            self._closed = True
            shutdown(self.nvml)


def make_sampler(settings: SamplingSettings) -> GpuNvmlSampler | None:
    """The factory: None for a CPU run or with GPU sampling off; ConfigError without NVML."""
    if not settings.gpus or not settings.gpu_sampling:
        return None
    nvml = load_nvml()
    try:
        found = list_gpus(nvml)
        missing = [i for i in settings.gpus if i >= len(found)]
        if missing:
            raise ConfigError(
                f"GPU {missing[0]} was assigned but NVML sees only {len(found)} GPU(s): "
                + "; ".join(g.describe() for g in found)
            )
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in settings.gpus]
    except nvml.NVMLError as exc:
        shutdown(nvml)
        raise ConfigError(f"NVML could not open the assigned GPUs: {error_text(exc)}") from exc
    except BaseException:
        shutdown(nvml)
        raise
    return GpuNvmlSampler(nvml, [found[i] for i in settings.gpus], handles)


@hookimpl
def bench_driver_register_samplers() -> dict[str, object]:
    return {"gpu_nvml": make_sampler}
