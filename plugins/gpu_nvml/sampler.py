"""GPU memory and utilisation of the task's GPUs, read through NVML on a sampling thread of its own.

Each tick, for every GPU handed to the task (NVML index ``i``), the timeline gets:

* ``gpu<i>_used_mib``: device memory allocated by everyone, without the memory the driver
  reserves for itself (``nvmlDeviceGetMemoryInfo_v2``; drivers before R510 only have the older
  query, whose figure includes it);
* ``gpu<i>_task_mib``: memory held by the task's own processes: the sum of ``usedGpuMemory``
  of the compute processes whose pid is in the task's process tree this tick. Another user's
  process on the same GPU does not count;
* ``gpu<i>_util_pct``: the percentage of time a kernel ran, over NVML's last sample period.

Faults are per GPU: a failed read leaves that GPU's cell empty and is reported once (with a
count); a lost GPU's columns stay empty from then on; the other GPUs go on. Summary metrics, in
MiB, over every (tick, GPU) sample: ``gpu_memory_usage_max`` (the largest amount one GPU held),
``gpu_memory_usage_mean`` and ``gpu_memory_usage_std`` (population). Each GPU contributes its task
figure, or, where NVML gives no trustworthy per-process figure on it, its device figure: the
record says which (``source`` per GPU) and the errors say why. No value is ever NaN.
docs/memory.md is the user's version.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from driver.errors import ConfigError
from driver.gpus.nvml import (BYTES_PER_MIB, GPU_IS_LOST, NO_PERMISSION, NOT_SUPPORTED, GpuInfo,
                              NvmlUnavailable, describe_machine, driver_version, error_code,
                              error_text, list_gpus, load_nvml, nvml_errors, nvml_session,
                              shutdown)
from driver.gpus.reader import MEMORY_V2, GpuReader, Memory, implausible
from driver.sampling import RunExit, Sampler, SamplerSummary, SamplingSettings

TASK = "task processes"
DEVICE = "device used"
MIXED = "mixed"  # some GPUs give the task's figure, others device memory (see each GPU's source)


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
    """One assigned GPU: how it is read and what was seen on it."""

    info: GpuInfo
    reader: GpuReader | None = None  # None until opened (or when it could not be)
    used: RunningStats = field(default_factory=RunningStats)
    task: RunningStats = field(default_factory=RunningStats)
    util: RunningStats = field(default_factory=RunningStats)
    reserved_mib: float | None = None
    no_per_process: str = ""  # why its per-process figures are unavailable or not trusted
    lost: str = ""  # "at 3.2 s: GPU is lost (...)": no more queries
    no_util: str = ""  # why utilisation is not read
    unseen_pids: int = 0  # listed processes whose pid does not exist here (PID namespaces)

    @property
    def source(self) -> str:
        return TASK if not self.no_per_process and self.task.n else DEVICE

    def figures(self) -> RunningStats:
        return self.task if self.source == TASK else self.used

    def details(self) -> dict[str, Any]:
        figures: dict[str, Any] = {"index": self.info.index, "name": self.info.name,
                                   "uuid": self.info.uuid, "total_mib": round(self.info.total_mib, 3),
                                   "source": self.source}
        figures.update(self.task.figures("task", "mib"))
        figures.update(self.used.figures("used", "mib"))
        figures.update(self.util.figures("util", "pct"))
        figures["samples"] = max(self.task.n, self.used.n)
        if self.reader is not None:
            figures["memory_query"] = self.reader.memory_query
            figures["process_query"] = self.reader.process_query
        if self.reserved_mib is not None:
            figures["reserved_mib"] = round(self.reserved_mib, 3)
        for key, text in (("per_process_unavailable", self.no_per_process),
                          ("lost", self.lost), ("util_unavailable", self.no_util)):
            if text:
                figures[key] = text
        return figures


class GpuNvmlSampler(Sampler):
    """Reads memory used, the task's own memory and utilisation of each assigned GPU.

    NVML is initialised in :meth:`start` and shut down in :meth:`stop`, both on the sampler's
    own thread, so that NVML is held exactly while the sampling thread runs.
    """

    name = "gpu_nvml"
    own_thread = True

    def __init__(self, gpus: Sequence[GpuInfo], unavailable: Sequence[GpuInfo] = ()) -> None:
        self.gpus = [_Gpu(info) for info in gpus]
        self.unavailable = [g.describe() for g in unavailable]
        self.columns = tuple(
            f"gpu{g.info.index}_{c}" for g in self.gpus for c in ("used_mib", "task_mib", "util_pct")
        )
        self.ticks = 0
        self.peak_total = {TASK: 0.0, DEVICE: 0.0}
        self.driver_version = ""
        self.start_error = ""
        self._nvml: Any = None
        self._failures: dict[tuple[int, str, str], list[Any]] = {}
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._t0 = time.monotonic()
        try:
            self._nvml = load_nvml()
        except NvmlUnavailable as exc:
            self.start_error = str(exc)
            return
        self.driver_version = driver_version(self._nvml)
        for gpu in self.gpus:
            handle = self._call(gpu, "nvmlDeviceGetHandleByUUID",
                                lambda: self._nvml.nvmlDeviceGetHandleByUUID(gpu.info.uuid))
            if handle is not None:
                gpu.reader = GpuReader(self._nvml, handle)

    def stop(self) -> None:
        """Release NVML (once)."""
        if self._nvml is not None:
            nvml, self._nvml = self._nvml, None
            shutdown(nvml)

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        self.ticks += 1
        tree = set(pids)
        row: dict[str, float] = {}
        totals = {TASK: 0.0, DEVICE: 0.0}
        for gpu in self.gpus:
            used, task, util = self._read(gpu, tree)
            prefix = f"gpu{gpu.info.index}_"
            for key, value, stats in (("used_mib", used, gpu.used), ("task_mib", task, gpu.task),
                                      ("util_pct", util, gpu.util)):
                if value is not None:
                    row[prefix + key] = value
                    stats.add(value)
            totals[TASK] += task or 0.0
            totals[DEVICE] += used or 0.0
        for source, total in totals.items():
            self.peak_total[source] = max(self.peak_total[source], total)
        return row

    def _read(self, gpu: _Gpu, tree: set[int]) -> tuple[float | None, float | None, float | None]:
        reader = gpu.reader
        if reader is None or gpu.lost or self._nvml is None:
            return None, None, None
        memory: Memory | None = self._call(gpu, reader.memory_query, reader.memory)
        used = None
        if memory is not None:
            used, gpu.reserved_mib = round(memory.used_mib, 3), memory.reserved_mib
        util = None
        if not gpu.no_util and not gpu.lost:
            util = self._call(gpu, "nvmlDeviceGetUtilizationRates", reader.utilisation_pct)
        task = self._task_mib(gpu, reader, tree) if not gpu.lost else None
        return used, task, util

    def _task_mib(self, gpu: _Gpu, reader: GpuReader, tree: set[int]) -> float | None:
        """The task's memory on *gpu*, or None when NVML cannot say (the reason is kept)."""
        if gpu.no_per_process:
            return None
        processes = self._call(gpu, reader.process_query, reader.processes, processes=True)
        if processes is None:
            if not reader.process_query:
                gpu.no_per_process = (
                    "the NVIDIA driver has no per-process query this nvidia-ml-py can read "
                    "(neither nvmlDeviceGetComputeRunningProcesses_v3 nor _v2)")
            return None
        gpu.no_per_process = _distrust(processes, tree, gpu.info.total_mib)
        if gpu.no_per_process:
            return None
        mine = [p for p in processes if p.pid in tree]
        if not mine and processes and not gpu.unseen_pids:
            gpu.unseen_pids = sum(not os.path.exists(f"/proc/{p.pid}") for p in processes)
        return round(sum(p.usedGpuMemory for p in mine) / BYTES_PER_MIB, 3)

    def _call(self, gpu: _Gpu, function: str, call: Callable[[], Any], processes: bool = False) -> Any:
        """``call()``; an NVML failure is counted (or ends what it shows) and gives None."""
        try:
            return call()
        except nvml_errors(self._nvml) as exc:
            code = error_code(exc)
            if code == GPU_IS_LOST:
                gpu.lost = f"at {time.monotonic() - self._t0:.1f} s: {error_text(exc)}"
            elif code == NOT_SUPPORTED and function == "nvmlDeviceGetUtilizationRates":
                gpu.no_util = error_text(exc)
                return None
            elif code in (NOT_SUPPORTED, NO_PERMISSION) and processes:
                gpu.no_per_process = f"the per-process query {function} failed: {error_text(exc)}"
                return None
            key = (gpu.info.index, function, error_text(exc))
            self._failures.setdefault(key, [0, time.monotonic() - self._t0])[0] += 1
            return None

    def summary(self, exit: RunExit) -> SamplerSummary:
        sources = {g.source for g in self.gpus}
        overall = sources.pop() if len(sources) == 1 else MIXED
        stats = RunningStats()
        for gpu in self.gpus:
            stats = stats.merge(gpu.figures())
        metrics: dict[str, float] = {}
        if stats.n:
            metrics = {
                "gpu_memory_usage_max": round(stats.max, 3),
                "gpu_memory_usage_mean": round(stats.mean, 3),
                "gpu_memory_usage_std": round(stats.std, 3),
            }
        total_source = TASK if overall == TASK else DEVICE
        details: dict[str, Any] = {
            "source": overall, "ticks": self.ticks, "samples": stats.n,
            "peak_total_mib": round(self.peak_total[total_source], 3),
            "peak_total_source": total_source, "driver_version": self.driver_version,
            "gpus": [g.details() for g in self.gpus],
        }
        if self.unavailable:
            details["unavailable_gpus"] = self.unavailable
        return SamplerSummary(metrics, details, self._errors(stats))

    def _errors(self, stats: RunningStats) -> list[str]:
        errors = [self.start_error] if self.start_error else []
        errors += [
            f"GPU {index}: {function} failed {count} time{'s' if count != 1 else ''} "
            f"(first at {first_s:.1f} s): {text}"
            for (index, function, text), (count, first_s) in self._failures.items()
        ]
        for gpu in self.gpus:
            errors += _gpu_notes(gpu)
        if not stats.n:
            errors.append(
                "no GPU memory sample succeeded, so gpu_memory_usage_max/mean/std are left out")
        return errors


def _distrust(processes: Sequence[Any], tree: set[int], total_mib: float) -> str:
    """Why this tick's process list gives no trustworthy task figure; "" when it does."""
    bad = implausible(processes, total_mib)
    if bad:
        return (f"NVML's process list is not plausible ({bad}): the driver writes process "
                f"entries in a layout this nvidia-ml-py does not read (early R535 drivers write "
                f"32-byte entries where it reads 24-byte ones); update the NVIDIA driver")
    if any(p.usedGpuMemory is None for p in processes if p.pid in tree):
        return "NVML reports the task's per-process memory as not available (as under Windows WDDM)"
    return ""


def _gpu_notes(gpu: _Gpu) -> list[str]:
    """What the user must know to read this GPU's figures."""
    index, notes = gpu.info.index, []
    if gpu.source == DEVICE and gpu.used.n:
        reserved = ("without driver-reserved memory" if gpu.reader and gpu.reader.memory_query
                    == MEMORY_V2 else "which may include driver-reserved memory: the driver has "
                    "no nvmlDeviceGetMemoryInfo_v2")
        why = gpu.no_per_process or "no per-process sample succeeded (see the errors above)"
        notes.append(f"GPU {index}: gpu_memory_usage_* use its device memory used ({reserved}), "
                     f"which counts every process on that GPU, not only the task's, because {why}")
    elif gpu.source == TASK and gpu.task.max == 0 and gpu.unseen_pids:
        notes.append(
            f"GPU {index}: NVML listed GPU processes whose pids do not exist in this PID namespace "
            f"(a container without --pid=host?), so none could be matched to the task: its task "
            f"memory reads 0; see gpu{index}_used_mib in timeline.csv for the device")
    if gpu.lost:
        notes.append(f"GPU {index} was lost {gpu.lost}: its columns are empty from then on and "
                     f"its figures cover the time before")
    if gpu.no_util:
        notes.append(f"GPU {index}: utilisation is not available ({gpu.no_util}); "
                     f"gpu{index}_util_pct stays empty")
    return notes


def make_sampler(settings: SamplingSettings) -> GpuNvmlSampler | None:
    """The factory: None for a CPU run or with GPU sampling off; ConfigError (before anything
    starts) without NVML, for a GPU NVML cannot open, and for MIG."""
    devices = settings.gpu_devices or tuple(str(i) for i in settings.gpus)
    if not devices or settings.option("no_gpu_sampling", False):
        return None
    try:
        with nvml_session() as nvml:
            found = list_gpus(nvml)
    except NvmlUnavailable as exc:
        raise NvmlUnavailable(
            f"{exc}. A run with {len(devices)} GPU{'s' if len(devices) != 1 else ''} needs NVML "
            f"to sample their memory; install the NVIDIA driver and nvidia-ml-py, set --num-gpus 0 "
            f"for a CPU run, or pass --no-gpu-sampling to hand the GPUs to the command unchecked."
        ) from exc
    return GpuNvmlSampler([_target(d, found) for d in devices], [g for g in found if g.problem])


def _target(device: str, found: Sequence[GpuInfo]) -> GpuInfo:
    """The GPU behind one CUDA_VISIBLE_DEVICES entry of the run, if it can be sampled."""
    if device.upper().startswith("MIG-"):
        raise ConfigError(
            f"CUDA_VISIBLE_DEVICES entry {device!r} is a MIG instance; bench-driver samples whole "
            f"GPUs only (on MIG, NVML's device figures cover other instances and utilisation is "
            f"not available). Use a whole GPU, or pass --no-gpu-sampling to run on the instance "
            f"without GPU figures.")
    if device.upper().startswith("GPU-"):
        matches = [g for g in found if g.uuid and g.uuid.lower().startswith(device.lower())]
    else:
        matches = [g for g in found if str(g.index) == device]
    if len(matches) != 1:
        raise ConfigError(f"GPU {device!r} was assigned but NVML does not see it (any more). "
                          f"{describe_machine(found)}")
    gpu = matches[0]
    if gpu.problem:
        raise ConfigError(f"GPU {gpu.index} was assigned but NVML cannot open it: {gpu.problem}")
    if gpu.mig:
        raise ConfigError(
            f"GPU {gpu.index} ({gpu.name}, {gpu.uuid}) is in MIG mode; bench-driver samples whole "
            f"GPUs only (NVML's device figures would cover every instance and utilisation is not "
            f"available). Choose a GPU without MIG, turn MIG off (nvidia-smi -i {gpu.index} "
            f"-mig 0, as root), or pass --no-gpu-sampling to run without GPU figures.")
    return gpu
