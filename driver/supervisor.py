"""Ends the task's whole tree: the signal first, SIGKILL after the grace period, every orphan reaped.

The command runs in its own session and process group, and the driver is a child subreaper
(driver.proctree), so the tree is the driver's descendants (its own helpers left out): a signal
goes to the command's process group *and* to every process of the tree (those that left the group
with setsid included), and every orphan re-parented to the driver is reaped here with ``wait4``,
keeping its exact peak RSS.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

from driver import proctree


class Supervisor:
    """Knows the command's process group and ends the tree: signal first, SIGKILL after grace."""

    def __init__(self, pid: int, grace_s: float, tree: Callable[[], list[int]]) -> None:
        self.pid = pid
        self.grace_s = grace_s
        self.tree = tree  # the task's processes now
        self.kill_at: float | None = None
        self.exit_maxrss_kib = 0  # the command's own wait4, set by the waiter
        self.maxrss_kib: list[int] = []  # every reaped orphan's
        self.leftovers_killed = 0
        self._lock = threading.Lock()

    def terminate(self, sig: int) -> None:
        """Send *sig* to the whole tree now; SIGKILL it after the grace period (see :meth:`tick`)."""
        with self._lock:
            proctree.signal_tree(self.pid, self.tree(), sig)
            if self.kill_at is None:
                self.kill_at = time.monotonic() + self.grace_s

    def tick(self) -> None:
        """SIGKILL the tree once the grace period is over."""
        if self.kill_at is not None and time.monotonic() >= self.kill_at:
            proctree.signal_tree(self.pid, self.tree(), proctree.SIGKILL)

    def end_leftovers(self) -> None:
        """After the command exited: end what it left running (daemons, double forks)."""
        left = self._running()
        if not left:
            return
        self.leftovers_killed = len(left)
        proctree.signal_tree(self.pid, left, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            self.reap_orphans()
            if not self._running():
                return
            time.sleep(0.02)
        proctree.signal_tree(self.pid, self.tree(), proctree.SIGKILL)
        self.wait_gone(5.0)

    def wait_gone(self, limit_s: float) -> None:
        """Reap until no process of the tree is left (SIGKILLed ones die at once), or *limit_s*."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            self.reap_orphans()
            if not [p for p in self.tree() if p != self.pid]:
                return
            time.sleep(0.01)

    def abort(self, waiter: threading.Thread | None) -> None:
        """The driver itself failed mid-run: end the whole tree (never orphan the workload)."""
        self.terminate(signal.SIGTERM)
        if waiter is not None and waiter.ident is not None:
            waiter.join(self.grace_s)
            if waiter.is_alive():
                proctree.signal_tree(self.pid, self.tree(), proctree.SIGKILL)
                waiter.join(5.0)
        self.wait_gone(5.0)

    def reap_orphans(self) -> None:
        """Reap exited orphans re-parented to the driver, keeping their exact peak RSS."""
        for pid in proctree.children(os.getpid()):
            if pid != self.pid and proctree.is_zombie(pid) and not proctree.is_helper(pid):
                try:
                    reaped, _, usage = os.wait4(pid, os.WNOHANG)
                except ChildProcessError:
                    continue
                if reaped:
                    self.maxrss_kib.append(proctree.maxrss_kib(usage.ru_maxrss))

    def _running(self) -> list[int]:
        """The task's processes that have not exited yet."""
        return [p for p in self.tree() if not proctree.is_zombie(p)]
