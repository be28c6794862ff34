"""The scraper's own process: it follows output.log as the pump writes it and sends values back.

CPython's ``re`` holds the GIL for the whole of one search call: a pattern that backtracks
catastrophically on one line would stall every thread of the driver, and with them the timeout,
the signals and the echo, for minutes. So the scrape runs in a process of its own, where a regex
can stall nothing but itself. It is a fresh interpreter (``python -S -E``, the scraper's class and
metric specs sent on its stdin), started when the first output arrives (a command that prints
nothing costs nothing): never a fork of the driver, which on these VMs costs the driver ~20 ms of
copy-on-write faults and is unsafe once the driver has threads.

* parent -> child, the *wake* pipe: the pump writes one byte each time it moved output into the
  log (never blocking: a full pipe already says "wake up"); EOF says the output has ended and
  the log is complete (or that the driver died: the child then finishes and exits).
* the child (driver.scrape_child) reads the log in place (a memory map of the page cache the
  pump just filled) and scrapes whole lines in blocks of at most ``BLOCK_BYTES``;
* child -> parent, the *results* pipe: after each block, one framed message (``marshal``: built
  in, nothing to import; ``pickle`` for what marshal cannot carry) with what the block added to
  each metric's :class:`~driver.scrape.MetricMatches`, how far the scrape got, and whether the
  child is now idle (waiting for output) or finished.

A child that spends a few seconds of CPU time with work and no news is stuck
(:meth:`ScrapeProcess.check`; one starved of CPU by a loaded machine is not). It is killed, and
a new one scrapes the stuck block line by line, with news after each line; when that one sticks
too, the line it is on is skipped and a third one goes on after it. So a line that stalls the
patterns costs that line's values and nothing else, and the run's record names it
(:class:`ScrapeEnd`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Sequence

from driver import proctree
from driver.records import Record
from driver.scrape import Scraper
from driver.scrape_child import BLOCK_BYTES, HEADER_BYTES, IDLE, LAST, decode, encode, write_all
from driver.scrape_deltas import merge

MAX_SKIPPED_LINES = 10  # then the patterns are hopeless on this log: scraping stops
CHILD_EXIT_S = 0.5  # a child that sent its last message (or was killed) exits within this

#: The child's whole program: the driver's package is found at argv[1] (no site: -S).
_CHILD_MAIN = ("import sys; sys.path.insert(0, sys.argv[1]); "
               "from driver.scrape_child import child_main; child_main(sys.argv[2:])")
_DRIVER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ScrapeEnd(Record):
    """How far the scrape got: the whole log, or up to ``scraped_bytes`` and why it stopped;
    and the lines that were skipped because the patterns stalled on them (their offsets)."""

    scraped_bytes: int
    log_bytes: int
    stopped: str | None = None  # None: the scrape reached the end of the log
    skipped_lines: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        """Whether every line of the log was scraped."""
        return self.stopped is None and not self.skipped_lines

    def notes(self, metrics: Sequence[str]) -> list[str]:
        """What the run's record says when the scrape is incomplete (which metrics, and why)."""
        names = ", ".join(metrics) or "(none)"
        out = [f"output.log line at byte {at} was not scraped: the patterns stalled on it "
               f"(a pattern that backtracks catastrophically?); metrics {names} may lack its "
               f"values" for at in self.skipped_lines]
        if self.stopped is not None:
            out.append(f"scraping stopped at byte {self.scraped_bytes} of {self.log_bytes} of "
                       f"output.log ({self.stopped}): metrics {names} lack the values after it")
        return out


class _Child:
    """One scraping process and its two pipes, from the parent's side."""

    def __init__(self, scraper: Scraper, log_fd: int, plan: tuple[int, int, bool]) -> None:
        wake_read, self.wake_fd = os.pipe()
        self.fd, results_write = os.pipe()
        spec_read, spec_write = os.pipe()
        fds = (log_fd, wake_read, results_write)
        argv = [sys.executable, "-S", "-E", "-c", _CHILD_MAIN, _DRIVER_ROOT,
                *map(str, fds), *map(str, map(int, plan))]
        try:
            self.pid = proctree.spawn_helper(argv, stdin=spec_read, pass_fds=fds)
            write_all(spec_write, encode(_spec(scraper)))
        finally:
            for fd in (spec_read, spec_write, wake_read, results_write):
                os.close(fd)
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self.fd, False)
        self.pending = bytearray()

    def wake(self) -> bool:
        """Poke the child; False if the poke was not needed (one is pending) or it is gone."""
        if self.wake_fd < 0:
            return False
        try:
            return os.write(self.wake_fd, b"\0") == 1
        except OSError:
            return False  # the pipe is full (the child has pokes to read), or the child is gone

    def end_of_output(self) -> None:
        """Close the wake pipe: EOF tells the child the log is complete."""
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            self.wake_fd = -1

    def messages(self) -> tuple[list[tuple[Any, ...]], bool]:
        """The whole messages sent since the last call (never blocks), and whether the child
        has closed its end (it exited, or died)."""
        closed = False
        while True:
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not data:
                closed = True
                break
            self.pending += data
        out, used = [], 0
        with memoryview(self.pending) as view:  # decoded in place, then dropped at once
            while len(view) - used >= HEADER_BYTES:
                size = int.from_bytes(view[used : used + HEADER_BYTES], "little")
                if len(view) - used < HEADER_BYTES + size:
                    break
                out.append(decode(view[used + HEADER_BYTES : used + HEADER_BYTES + size]))
                used += HEADER_BYTES + size
        del self.pending[:used]
        return out, closed

    def close(self, done: bool) -> None:
        """Release the pipes and the child: one that is *done* exits by itself (it is reaped
        later, with the other helpers); any other is killed and reaped now."""
        self.end_of_output()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if done:
            proctree.reap_helper(self.pid, CHILD_EXIT_S)
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proctree.reap_helper(self.pid, CHILD_EXIT_S)


class ScrapeProcess:
    """The parent's side: starts the scraping child with the first output, wakes it, merges what
    it sends into ``scraper.found``, and replaces a stuck child (see the module's docstring).
    *on_new_child* is told each child's pid."""

    def __init__(self, scraper: Scraper, log_fd: int,
                 on_new_child: Callable[[int], None] = lambda pid: None) -> None:
        self.scraper = scraper
        self.log_fd = log_fd
        self.on_new_child = on_new_child
        self.scraped = 0
        self.finished = False  # no child is left to hear from
        self.stopped: str | None = None
        self.skipped_lines: list[int] = []
        self.output_ended = False
        self._lock = threading.Lock()  # the pump wakes the child on its thread
        self._lines_until = -1  # the stuck block being scraped line by line ends here
        self._pokes = 0  # pokes written to the current child's wake pipe
        self._busy_since: float | None = None  # since when the child has had work, if it has
        self._cpu_mark_s: float | None = None  # its CPU time when last heard of or set to work
        self._child: _Child | None = None  # none until there is output

    @property
    def pid(self) -> int | None:
        """The scraping child's pid (it changes when a stuck child is replaced), if one runs."""
        return self._child.pid if self._child else None

    @property
    def fd(self) -> int:
        """The results pipe of the current child (for ``select``); -1 while there is none."""
        return self._child.fd if self._child else -1

    def wake(self) -> None:
        """More output is in the log (called by the pump, on its thread)."""
        with self._lock:
            if self._child is None and not self.finished:
                self._start_child(0, skip_first_line=False)
            if self._child is not None and self._child.wake():
                self._pokes += 1
                if self._busy_since is None:
                    self._busy_since, self._cpu_mark_s = time.monotonic(), None

    def end_of_output(self) -> None:
        """The log is complete: the child scrapes the rest, sends it, and exits (an empty log
        needs no child)."""
        with self._lock:
            self.output_ended = True
            if self._child is None and not self.finished:
                if os.fstat(self.log_fd).st_size == 0:
                    self.finished = True
                    return
                self._start_child(0, skip_first_line=False)
            self._busy_since = self._busy_since or time.monotonic()
            if self._child is not None:
                self._child.end_of_output()

    def collect(self) -> None:
        """Merge every whole message the child has sent so far (never blocks)."""
        if self.finished or self._child is None:
            return
        messages, closed = self._child.messages()
        for scraped, deltas, state, pokes_read, error in messages:
            if deltas:
                merge(self.scraper.found, deltas)
            self.scraped = scraped
            self._cpu_mark_s = None
            with self._lock:  # idle only if it had read every poke sent so far
                if state == IDLE and pokes_read >= self._pokes and not self.output_ended:
                    self._busy_since = None
            if error is not None:
                self.stopped = f"the scraper failed: {error}"
            if state == LAST:
                self._finish(done=True)
        if closed and not self.finished:
            self.stopped = self.stopped or "the scraper process died"
            self._finish(done=False)

    def check(self, stall_s: float) -> None:
        """Replace the child if it has spent *stall_s* of CPU time with work and no news (a
        child the machine's load starves of CPU is not stuck: it is never replaced)."""
        if self.finished or self._busy_since is None or self._child is None:
            return
        found = proctree.stat(self._child.pid)
        if found is None:
            return  # gone: collect() hears of it
        cpu_s = found.cpu_ticks / proctree.CLOCK_TICKS
        if self._cpu_mark_s is None:
            self._cpu_mark_s = cpu_s  # its CPU time when it was last heard of (or set to work)
            return
        if cpu_s - self._cpu_mark_s <= stall_s:
            return
        self._child.close(done=False)
        with self._lock:
            self._replace_stuck_child()

    def _replace_stuck_child(self) -> None:
        if self.scraped >= self._lines_until:
            self._lines_until = -1  # past the block gone over line by line
        if self._lines_until < 0:  # stuck somewhere in a block: go over it line by line
            self._lines_until = self.scraped + BLOCK_BYTES
            self._start_child(self.scraped, skip_first_line=False)
        elif len(self.skipped_lines) < MAX_SKIPPED_LINES:  # stuck on this very line: skip it
            self.skipped_lines.append(self.scraped)
            self._start_child(self.scraped, skip_first_line=True)
        else:
            self.stopped = (f"the patterns stalled on {MAX_SKIPPED_LINES} lines: scraping "
                            f"stopped")
            self.finished = True

    def stop(self, why: str) -> None:
        """End the child now (the timeout, a signal); :meth:`end` says why."""
        self.collect()
        if not self.finished:
            self.stopped = why
            self._finish(done=False)

    def end(self) -> ScrapeEnd:
        """How far the scrape got (once finished)."""
        log_bytes = os.fstat(self.log_fd).st_size
        stopped = self.stopped
        if stopped is None and self.scraped < log_bytes:
            stopped = "the scraper process ended early"
        return ScrapeEnd(self.scraped, log_bytes, stopped, tuple(self.skipped_lines))

    def close(self) -> None:
        """Release the child (killed if it still runs) and its pipes."""
        self.stop("the driver stopped before scraping finished")

    def _start_child(self, start: int, skip_first_line: bool) -> None:
        """Start a child from *start* (the caller holds the lock)."""
        self._child = _Child(self.scraper, self.log_fd,
                             (start, self._lines_until, skip_first_line))
        self._pokes = 0
        self._busy_since = time.monotonic()  # it has the log so far to scrape
        self._cpu_mark_s = None
        if self.output_ended:
            self._child.end_of_output()
        self.on_new_child(self._child.pid)

    def _finish(self, done: bool) -> None:
        self.finished = True
        if self._child is not None:
            self._child.close(done)


def _spec(scraper: Scraper) -> dict[str, Any]:
    """What a fresh interpreter needs to build the same scraper (and find its class)."""
    cls = type(scraper)
    return {"path": list(sys.path), "module": cls.__module__, "class": cls.__qualname__,
            "metrics": [m._asdict() for m in scraper.metrics]}
