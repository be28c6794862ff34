"""The process readers of driver.proctree, through psutil: where /proc is absent (macOS), or
when ``BENCH_DRIVER_PROCESS_READER=psutil`` forces it (the tests do, on Linux).

Semantics (docs/memory.md): a process's memory is its RSS now; psutil knows no per-process
peak, so :class:`~driver.proctree.ProcessMemory` ``hwm_kib`` is that same RSS and the peak is the
largest one polled (the kernel's ``ru_maxrss`` of reaped processes stays exact). A zombie reads
as 0 KiB, as on /proc. Walking the tree costs more than /proc's ``children`` files (~1.8 ms a
sample against ~0.3 ms), which is why Linux keeps /proc.
"""

from __future__ import annotations

import os

import psutil

from driver.proctree import CLOCK_TICKS, ProcessMemory, ProcessStat

#: psutil's status names -> the state letters of /proc/PID/stat.
STATE_LETTERS = {psutil.STATUS_RUNNING: "R", psutil.STATUS_SLEEPING: "S",
                 psutil.STATUS_DISK_SLEEP: "D", psutil.STATUS_STOPPED: "T",
                 psutil.STATUS_TRACING_STOP: "t", psutil.STATUS_ZOMBIE: "Z",
                 psutil.STATUS_DEAD: "X", psutil.STATUS_IDLE: "I"}
_GONE = (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError)


def children(pid: int) -> list[int]:
    """Direct children of *pid*, or [] if it is gone."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except _GONE:
        return []


def memory(pid: int) -> ProcessMemory | None:
    """The RSS of *pid* (as both figures, see the module's note); None if it is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() == psutil.STATUS_ZOMBIE:
                return ProcessMemory(0, 0)
            rss_kib = process.memory_info().rss // 1024
    except psutil.ZombieProcess:
        return ProcessMemory(0, 0)
    except _GONE:
        return None
    return ProcessMemory(rss_kib, rss_kib)


def stat(pid: int) -> ProcessStat | None:
    """State, parent, group, session, start and CPU time of *pid*; None if it is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times = process.cpu_times()
            return ProcessStat(STATE_LETTERS.get(process.status(), "?"), process.ppid(),
                               os.getpgid(pid), os.getsid(pid),
                               int(process.create_time() * CLOCK_TICKS),
                               int((times.user + times.system) * CLOCK_TICKS))
    except _GONE:
        return None
