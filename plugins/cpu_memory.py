"""CPU memory of the task's whole process tree.

* ``cpu_memory_usage``: peak resident memory in MiB. The larger of (a) the kernel's exact peak RSS
  of any single process of the tree (``wait4`` ``ru_maxrss`` of every reaped process, and the
  polled ``VmHWM`` of live ones, which the kernel keeps even between polls) and (b) the peak of
  the tree's summed RSS as polled. For one process (the common case) this is the kernel's own
  number; for a multi-process workload (DDP ranks, data-loader workers) (b) adds up the processes
  that are alive together, accurate to the polling interval. Where processes are read through
  psutil (no /proc), (a)'s polled part is the largest RSS polled, not VmHWM.
* ``cpu_memory_usage_mean``: mean of the polled tree RSS over the run, MiB.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from driver import proctree
from driver.hookspecs import hookimpl
from driver.sampling import RunExit, Sampler, SamplerSummary, SamplingSettings

KIB_PER_MIB = 1024.0
#: What a polled per-process peak is: the kernel's VmHWM (/proc), or the largest RSS polled
#: (psutil, which knows no per-process peak: see driver.proctree_psutil).
POLLED_PEAK = {False: "polled VmHWM", True: "polled RSS (psutil)"}


class CpuMemorySampler(Sampler):
    """Sums VmRSS over the tree each tick and keeps every process's VmHWM."""

    name = "cpu_memory"
    columns = ("cpu_rss_mib", "processes")

    def __init__(self) -> None:
        self.hwm_kib = 0
        self.peak_sum_kib = 0
        self.total_kib = 0
        self.samples = 0
        self.max_processes = 0

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        tree_kib = 0
        alive = 0
        for pid in pids:
            mem = proctree.memory(pid)
            if mem is None or mem.hwm_kib == 0:
                continue  # gone, or a zombie
            alive += 1
            tree_kib += mem.rss_kib
            if mem.hwm_kib > self.hwm_kib:
                self.hwm_kib = mem.hwm_kib
        if alive:
            self.samples += 1
            self.total_kib += tree_kib
        self.peak_sum_kib = max(self.peak_sum_kib, tree_kib)
        self.max_processes = max(self.max_processes, alive)
        return {"cpu_rss_mib": round(tree_kib / KIB_PER_MIB, 3), "processes": alive}

    def summary(self, exit: RunExit) -> SamplerSummary:
        kernel_kib = max(exit.maxrss_kib, default=0)
        # Below the spawn floor the kernel's figure is the driver's own memory, not the task's.
        exact = kernel_kib > exit.spawn_floor_kib
        process_peak_kib = max(kernel_kib if exact else 0, self.hwm_kib)
        peak_kib = max(process_peak_kib, self.peak_sum_kib)
        mean_kib = self.total_kib / self.samples if self.samples else 0.0
        details: dict[str, float | str] = {
            "peak_mib": round(peak_kib / KIB_PER_MIB, 3),
            "peak_process_mib": round(process_peak_kib / KIB_PER_MIB, 3),
            "peak_process_source": "kernel ru_maxrss" if exact and kernel_kib >= self.hwm_kib
            else POLLED_PEAK[proctree.use_psutil()],
            "peak_tree_sum_mib": round(self.peak_sum_kib / KIB_PER_MIB, 3),
            "mean_tree_mib": round(mean_kib / KIB_PER_MIB, 3),
            "kernel_maxrss_mib": round(kernel_kib / KIB_PER_MIB, 3),
            "spawn_floor_mib": round(exit.spawn_floor_kib / KIB_PER_MIB, 3),
            "samples": self.samples,
            "max_processes": self.max_processes,
        }
        if peak_kib == 0:  # ended before the first sample, below what the kernel can tell us
            details["note"] = (f"the task ended before it could be sampled; its peak RSS was at "
                               f"most {kernel_kib / KIB_PER_MIB:.1f} MiB (the spawn floor)")
            return SamplerSummary({}, details)
        metrics = {
            "cpu_memory_usage": round(peak_kib / KIB_PER_MIB, 3),
            "cpu_memory_usage_mean": round(mean_kib / KIB_PER_MIB, 3),
        }
        return SamplerSummary(metrics, details)


@hookimpl
def bench_driver_register_samplers() -> dict[str, object]:
    def factory(settings: SamplingSettings) -> Sampler:
        return CpuMemorySampler()

    return {"cpu_memory": factory}
