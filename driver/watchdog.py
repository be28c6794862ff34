"""The watchdog: a small process that ends the task's tree when the driver itself dies.

A SIGKILLed (or crashed) driver runs nothing any more: no handler, no ``finally``. So before the
command starts, the driver forks this watchdog, which blocks reading a pipe whose write end only
the driver holds (close-on-exec: the task never inherits it). However the driver dies, the kernel
closes that end, and the watchdog reads EOF at once.

While the driver lives it tells the watchdog every process of the task it sees: the command as
soon as it is started, then the tree at every sample (``--sample-interval``). The watchdog notes
each one's start time, process group and session. On EOF without a goodbye it SIGKILLs, in
rounds until none is left:

* every process it was told of that is still the same process (same pid *and* start time);
* every process started since the task started that is in one of the task's sessions or process
  groups, or that carries the run's token in its environment (``TOKEN_ENV``, given to the command
  and inherited by every descendant that keeps its environment, as Jenkins marks a build's
  processes): so a process forked since the last sample is found even after a setsid and an
  orphaning;
* every descendant of those (from one snapshot of /proc taken before the round's kills, so that
  orphans are still linked to their parents).

Why a process, and this one: ``PR_SET_PDEATHSIG`` reaches only the direct child (not a setsid
grandchild), needs ``preexec_fn`` (which forces the slow fork path) and fires when the spawning
*thread* exits; a thread dies with the driver. The watchdog is in a process group of its own (a
signal to the driver's group, Ctrl-C included, does not reach it), ignores the signals that stop
the driver, holds no console, and is no part of the task's tree (see ``proctree.task_tree``). It
is forked by the scraper's process (so the driver forks once per run) and costs no CPU while the
driver lives.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable

from driver import proctree

BYE = b"bye\n"
TOKEN_ENV = "BENCH_DRIVER_RUN_TOKEN"  # in the command's environment: the run's processes carry it
WATCHDOG_NICE = 19
KILL_ROUNDS = 20
ROUND_PAUSE_S = 0.02
_PIDS_PER_MESSAGE = 400  # under PIPE_BUF (4 KiB): a write from either thread stays whole


class Watchdog:
    """The driver's side: tell it the task's processes; release it when the tree is reaped.

    It is forked by the driver's first helper (the scraper's process), so that the driver itself
    forks once: make it (the pipe) first, :meth:`launch` it in that helper, then call
    :meth:`launched` in the driver.
    """

    def __init__(self, token: str) -> None:
        """*token* is the value of ``TOKEN_ENV`` in the command's environment."""
        self.read_fd, write_fd = os.pipe()  # both close-on-exec: the task never holds them
        self._fd: int | None = write_fd
        self._told: set[int] = set()
        self._spared = {os.getsid(0), os.getpgrp()}
        self._mark = f"\0{TOKEN_ENV}={token}\0".encode()

    def launch(self) -> int:
        """In the first helper, forked before the command: fork the watchdog from there (its
        pid is returned). That helper is one it kills if the driver dies (a scraper stuck in a
        regex never notices); its start time is the run's (the task's processes start after)."""
        helper = os.getpid()
        found = proctree.stat(helper)
        since = found.start_ticks if found else 0
        pid = proctree.fork_helper(
            lambda: _watch(self.read_fd, self._spared, self._mark, since, [helper]),
            keep_fds=(self.read_fd,))
        os.close(self.read_fd)
        return pid

    def launched(self) -> None:
        """In the driver, once the first helper is forked: keep only the pipe's write end."""
        os.close(self.read_fd)
        if self._fd is not None:
            os.set_blocking(self._fd, False)  # a stopped watchdog must never stall the driver

    def tell(self, pids: Iterable[int]) -> None:
        """Tell the watchdog of these processes of the task (those it was not told before)."""
        new = [p for p in pids if p not in self._told]
        self._told.update(new)
        for i in range(0, len(new), _PIDS_PER_MESSAGE):
            self._send(" ".join(map(str, new[i : i + _PIDS_PER_MESSAGE])).encode() + b"\n")

    def release(self) -> None:
        """The tree is reaped: say goodbye (the watchdog exits without killing anything)."""
        if self._fd is not None:
            self._send(BYE)
            os.close(self._fd)
            self._fd = None
        proctree.reap_helpers()

    def _send(self, message: bytes) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, message)
        except (BlockingIOError, BrokenPipeError):
            pass  # a stopped or killed watchdog: nothing to tell it


def _watch(fd: int, spared: set[int], mark: bytes, since: int, helpers: list[int]) -> None:
    """The watchdog's whole life: learn the tree until goodbye, or kill it on EOF."""
    os.setpgid(0, 0)  # a group of its own: a signal to the driver's group does not reach it
    os.nice(WATCHDOG_NICE)  # it mostly sleeps; it must never compete with the run for the CPU
    known = _KnownTree(spared | {os.getpid()}, mark, since)
    known.learn(helpers, kin=False)
    pending = b""
    while True:
        data = os.read(fd, 1 << 16)
        if not data:  # the driver is gone and did not say goodbye
            known.kill_all()
            return
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line + b"\n" == BYE:
                return
            known.learn(int(p) for p in line.split())


class _KnownTree:
    """What the watchdog knows of the task: processes (with start times), groups, sessions."""

    def __init__(self, spared: set[int], mark: bytes, since: int) -> None:
        self.spared = spared  # the driver's session and group, and the watchdog itself
        self.mark = mark  # NUL TOKEN_ENV=token NUL, as it is in /proc/PID/environ
        self.since = since  # the run's start: the task's processes all start after it
        self.started: dict[int, int] = {}
        self.groups: set[int] = set()
        self.sessions: set[int] = set()

    def learn(self, pids: Iterable[int], kin: bool = True) -> None:
        """Note these processes; with *kin*, their groups and sessions are the task's too."""
        for pid in pids:
            found = proctree.stat(pid)
            if found is None or pid in self.started:
                continue
            self.started[pid] = found.start_ticks
            if kin:
                self.groups.update({found.pgrp} - self.spared)
                self.sessions.update({found.session} - self.spared)

    def kill_all(self) -> None:
        """SIGKILL the tree in rounds, until a round finds nothing of it alive."""
        for _ in range(KILL_ROUNDS):
            victims = self.victims()
            if not victims:
                return
            for group in self.groups:
                _sigkill(os.killpg, group)
            for pid in victims:
                _sigkill(os.kill, pid)
            time.sleep(ROUND_PAUSE_S)

    def victims(self) -> set[int]:
        """The live processes of the task now, from one snapshot of /proc."""
        snapshot = {pid: s for pid in proctree.all_pids() if (s := proctree.stat(pid))}
        found = {pid for pid, s in snapshot.items() if self._ours(pid, s)}
        children: dict[int, list[int]] = {}
        for pid, s in snapshot.items():
            children.setdefault(s.ppid, []).append(pid)
        frontier = list(found)
        while frontier:
            frontier = [c for p in frontier for c in children.get(p, ()) if c not in found]
            found.update(frontier)
        return {pid for pid in found - self.spared if snapshot[pid].state != "Z"}

    def _ours(self, pid: int, s: proctree.ProcessStat) -> bool:
        if self.started.get(pid) == s.start_ticks:
            return True
        if s.start_ticks < self.since:
            return False  # older than the run: not the task's, whatever its group or session
        return s.session in self.sessions or s.pgrp in self.groups or self._marked(pid)

    def _marked(self, pid: int) -> bool:
        return self.mark in b"\0" + (proctree.environ(pid) or b"") + b"\0"


def _sigkill(kill: Callable[[int, int], None], target: int) -> None:
    try:
        kill(target, proctree.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
