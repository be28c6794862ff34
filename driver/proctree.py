"""The task's process tree, read cheaply from /proc (Linux), and the means to end it.

Where /proc is absent (macOS) the tree, the processes' memory and their state are read through
psutil instead (:data:`READER_ENV` forces either: ``BENCH_DRIVER_PROCESS_READER=psutil`` is how
the tests exercise that path on Linux). psutil knows no per-process peak (VmHWM): there a
process's peak is the largest RSS polled, and the exact figure is the kernel's ``ru_maxrss`` of
each reaped process, as on Linux.

bench-driver makes itself a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so that a
double-forked grandchild is re-parented to the driver instead of init: it stays in the tree, is
sampled, killed with the rest, and reaped with ``wait4`` (which gives its exact peak RSS).

The driver's own helper processes (the scraper's process, the watchdog) are its children too, in
its own session; they are registered in :data:`HELPERS` and are never part of the task's tree.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Sequence

from driver import errors
from driver.records import Record

PR_SET_CHILD_SUBREAPER = 36
_subreaper: bool | None = None
READER_ENV = "BENCH_DRIVER_PROCESS_READER"  # "proc" or "psutil"; default: proc where it exists
READERS = ("proc", "psutil")

#: Pids of the driver's own helper processes (children of the driver, not of the task).
HELPERS: set[int] = set()


def become_subreaper() -> bool:
    """Make orphaned descendants re-parent to this process. Returns False where unsupported."""
    global _subreaper
    if _subreaper is None:  # once per process: the setting lasts
        _subreaper = sys.platform.startswith("linux") and _prctl(PR_SET_CHILD_SUBREAPER, 1) == 0
    return _subreaper


def _prctl(option: int, value: int) -> int:
    """libc's ``prctl(option, value, 0, 0, 0)``; -1 where it cannot be called.

    Through ``_ctypes``, the C core that ``ctypes`` wraps: ``import ctypes`` (its ~30 C types,
    ``pythonapi``, ``struct``) costs ~6M instructions, 2% of a trivial run; these few lines of
    the same API cost ~0.3M. ``ctypes`` itself if that API ever changes."""
    try:
        import _ctypes

        class Int(_ctypes._SimpleCData):  # a direct subclass: results come back as int
            _type_ = "i"

        class Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        class Libc:  # what CFuncPtr reads of a ctypes.CDLL: the dlopen handle
            _handle = _ctypes.dlopen(None)  # type: ignore[arg-type]  # NULL: the program

        return int(Function(("prctl", Libc()))(option, value, 0, 0, 0))  # type: ignore[arg-type]
    except (ImportError, AttributeError, TypeError):
        pass
    except OSError:
        return -1
    try:
        import ctypes

        return int(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0))
    except (OSError, AttributeError):
        return -1


def reader() -> str:
    """How processes are read: ``"proc"`` or ``"psutil"`` (:data:`READER_ENV`, else /proc where
    it exists). An unknown value is a ConfigError naming the variable."""
    chosen = os.environ.get(READER_ENV) or ("proc" if os.path.exists("/proc/self/stat")
                                            else "psutil")
    if chosen not in READERS:
        raise errors.ConfigError(f"{READER_ENV}={chosen!r} is not a process reader; use one of "
                                 f"{', '.join(READERS)}{errors.did_you_mean(chosen, READERS)}")
    return chosen


_psutil: bool | None = None


def use_psutil() -> bool:
    """Whether this process reads processes through psutil (decided once)."""
    global _psutil
    if _psutil is None:
        _psutil = reader() == "psutil"
    return _psutil


def children(pid: int) -> list[int]:
    """Direct children of *pid* (every thread's), or [] if it is gone."""
    if use_psutil():
        from driver import proctree_psutil

        return proctree_psutil.children(pid)
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


def task_tree() -> list[int]:
    """The task's processes: every descendant of this (subreaper) driver but its helpers.

    A helper is a child of the driver in the driver's own session (the command starts a session
    of its own, which none of its descendants can leave for the driver's): so a helper is left
    out even in the instant between its fork and its registration in HELPERS.
    """
    found: list[int] = []
    for child in children(os.getpid()):
        if not is_helper(child):
            found.append(child)
            found.extend(descendants(child))
    return found


def is_helper(child: int) -> bool:
    """Whether this child of the driver is one of its helpers: registered, or in the driver's
    own session (the watchdog, adopted by the driver once the helper that forked it is gone)."""
    if child in HELPERS:
        return True
    seen = stat(child)
    return seen is not None and seen.session == os.getsid(0)


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


class ProcessMemory(Record):
    """One process's resident memory now and its high-water mark, in KiB (0 for a zombie)."""

    rss_kib: int
    hwm_kib: int


def _proc_file(pid: int, name: str) -> bytes | None:
    """The contents of /proc/PID/NAME; None if *pid* is gone (or the file unreadable)."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


def memory(pid: int) -> ProcessMemory | None:
    """Read VmRSS and VmHWM of *pid* from /proc/PID/status; None if it is gone. (psutil: the
    RSS now, which the sampler's maximum makes the polled peak.)"""
    if use_psutil():
        from driver import proctree_psutil

        return proctree_psutil.memory(pid)
    text = _proc_file(pid, "status")
    if text is None:
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
    mem = None if use_psutil() else memory(os.getpid())
    if mem is not None:
        return mem.hwm_kib
    import resource

    return maxrss_kib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def maxrss_kib(ru_maxrss: int) -> int:
    """``ru_maxrss`` in KiB: Linux gives KiB, macOS bytes."""
    return int(ru_maxrss) // 1024 if sys.platform == "darwin" else int(ru_maxrss)


def is_zombie(pid: int) -> bool:
    """True when *pid* has exited and waits to be reaped."""
    found = stat(pid)
    return found is not None and found.state == "Z"


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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcessStat(Record):
    """Who a process is (from /proc/PID/stat): state letter, parent, group, session, start."""

    state: str
    ppid: int
    pgrp: int
    session: int
    start_ticks: int  # clock ticks after boot: with the pid, it names one process for good
    cpu_ticks: int  # user + system CPU time so far, in clock ticks (CLOCK_TICKS per second)


def stat(pid: int) -> ProcessStat | None:
    """Read /proc/PID/stat (or ask psutil); None if *pid* is gone."""
    if use_psutil():
        from driver import proctree_psutil

        return proctree_psutil.stat(pid)
    text = _proc_file(pid, "stat")
    if text is None:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    try:
        return ProcessStat(fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]),
                           int(fields[19]), int(fields[11]) + int(fields[12]))
    except (IndexError, ValueError):
        return None


def environ(pid: int) -> bytes | None:
    """The environment *pid* was started with (NUL-separated), None if it cannot be read."""
    return _proc_file(pid, "environ")


def all_pids() -> list[int]:
    """Every process id on the machine (that this process can see)."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def spawn_helper(argv: Sequence[str], stdin: int, pass_fds: Sequence[int] = (),
                 own_group: bool = False) -> int:
    """Start a helper program (never a fork of the driver: on these VMs a fork costs the driver
    some 20 ms of copy-on-write faults); return its pid, registered in HELPERS.

    It reads *stdin* (a descriptor), keeps *pass_fds*, holds no console (stdout and stderr are
    /dev/null: it never keeps a pipe of the driver's open), and with *own_group* is in a
    process group of its own (a signal to the driver's group, Ctrl-C included, misses it).
    """
    import subprocess

    proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, pass_fds=tuple(pass_fds),
                            process_group=0 if own_group else None)
    proc.returncode = 0  # reaped here (reap_helpers), never by Popen
    HELPERS.add(proc.pid)
    return proc.pid


def reap_helpers() -> None:
    """Reap the helpers that have exited (they are never reaped as the task's processes), those
    the driver adopted included."""
    adopted = [c for c in children(os.getpid()) if is_zombie(c) and is_helper(c)]
    for pid in list(HELPERS) + adopted:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            HELPERS.discard(pid)


def reap_helper(pid: int, limit_s: float) -> None:
    """Reap helper *pid*, which was told to leave, waiting up to *limit_s* for it (reaped, its CPU
    time and peak RSS count in the driver's own ``wait4`` figures, as a benchmark reads them)."""
    deadline = time.monotonic() + limit_s
    while pid in HELPERS:
        reap_helpers()
        if time.monotonic() >= deadline:
            return
        time.sleep(0.0005)


#: Signals that ask the driver to stop (driver.errors.STOP_SIGNALS): forwarded to the task,
#: which is then reaped; each gives the exit code 128 + its number.
STOP_SIGNALS = tuple(getattr(signal, name) for name in errors.STOP_SIGNALS
                     if hasattr(signal, name))
