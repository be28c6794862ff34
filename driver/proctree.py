"""The task's process tree, read cheaply from /proc (Linux), and the means to end it.

bench-driver makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so that a
double-forked grandchild is re-parented to the driver instead of init: it stays in the tree, is
sampled, killed with the rest, and reaped with ``wait4`` (which gives its exact peak RSS).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024 if hasattr(os, "sysconf") else 4


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process. Returns False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def children(pid: int) -> list[int]:
    """Direct children of *pid* (every thread's), or [] if it is gone."""
    found: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every descendant of *pid*, breadth first (not *pid* itself)."""
    found: list[int] = []
    frontier = [pid]
    while frontier:
        nxt: list[int] = []
        for p in frontier:
            nxt.extend(children(p))
        found.extend(nxt)
        frontier = nxt
    return found


@dataclass(frozen=True)
class ProcessMemory:
    """One process's resident memory now and its high-water mark, in KiB (0 for a zombie)."""

    rss_kib: int
    hwm_kib: int


def memory(pid: int) -> ProcessMemory | None:
    """Read VmRSS and VmHWM of *pid* from /proc/PID/status; None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return None
    return ProcessMemory(_field_kib(text, b"VmRSS:"), _field_kib(text, b"VmHWM:"))


def _field_kib(text: bytes, key: bytes) -> int:
    start = text.find(key)
    if start < 0:
        return 0  # zombies and kernel threads have no Vm* lines
    end = text.find(b"\n", start)
    return int(text[start + len(key) : end].split()[0])


def own_hwm_kib() -> int:
    """This process's own peak RSS: a forked or vforked child's ru_maxrss never reads below it."""
    mem = memory(os.getpid())
    if mem is not None:
        return mem.hwm_kib
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def is_zombie(pid: int) -> bool:
    """True when *pid* has exited and waits to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


def signal_tree(pgid: int, pids: list[int], sig: int) -> None:
    """Send *sig* to the task's process group and to every listed process (those that left the
    group with setsid included). Processes already gone are ignored."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


SIGKILL = getattr(signal, "SIGKILL", 9)
