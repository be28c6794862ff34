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
* the child reads the log in place (a memory map of the page cache the pump just filled) and
  scrapes whole lines in blocks of at most ``BLOCK_BYTES``;
* child -> parent, the *results* pipe: after each block, one framed message (``marshal``: built
  in, nothing to import; ``pickle`` for what marshal cannot carry) with what the block added to
  each metric's :class:`~driver.scrape.MetricMatches`, how far the scrape got, and whether the
  child is now idle (waiting for output) or finished.

A child that spends a few seconds of CPU time with work and no news is stuck
(:meth:`ScrapeProcess.check`; one starved of CPU by a loaded machine is not). It is killed, and
a new one scrapes the stuck block line by line, with news after each line; when that one sticks
too, the line it is on is skipped and a third one goes on after it. So a line that
stalls the patterns costs that line's values and nothing else, and the run's record names it
(:class:`ScrapeEnd`).
"""

from __future__ import annotations

import marshal
import mmap
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from driver import proctree
from driver.scrape import MAX_LINE_BYTES, Scraper
from driver.scrape_deltas import Deltas, merge

BLOCK_BYTES = 1 << 20
MAX_SKIPPED_LINES = 10  # then the patterns are hopeless on this log: scraping stops
CHILD_EXIT_S = 0.5  # a child that sent its last message (or was killed) exits within this
COALESCE_S = 0.02  # a child woken with less than a block to scrape waits this long for more
_HEADER_BYTES = 8
BUSY, IDLE, LAST = "busy", "idle", "last"  # what a child says it is doing after a message

#: The child's whole program: the driver's package is found at argv[1] (no site: -S).
_CHILD_MAIN = ("import sys; sys.path.insert(0, sys.argv[1]); "
               "from driver.scrape_process import child_main; child_main(sys.argv[2:])")
_DRIVER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class ScrapeEnd:
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
            _write_all(spec_write, _encode(_spec(scraper)))
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
            while len(view) - used >= _HEADER_BYTES:
                size = int.from_bytes(view[used : used + _HEADER_BYTES], "little")
                if len(view) - used < _HEADER_BYTES + size:
                    break
                out.append(_decode(view[used + _HEADER_BYTES : used + _HEADER_BYTES + size]))
                used += _HEADER_BYTES + size
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
    import dataclasses

    cls = type(scraper)
    return {"path": list(sys.path), "module": cls.__module__, "class": cls.__qualname__,
            "metrics": [dataclasses.asdict(m) for m in scraper.metrics]}


def child_main(argv: Sequence[str]) -> None:
    """The scraping child's program (``python -S -E -c ...``): the scraper's spec on stdin;
    *argv*: the log, wake and results descriptors, then the plan (start, lines_until, skip)."""
    for sig in proctree.STOP_SIGNALS:  # the driver decides when this process ends
        signal.signal(sig, signal.SIG_IGN)
    log_fd, wake_fd, out_fd, start, lines_until, skip = map(int, argv)
    with os.fdopen(0, "rb") as stdin:
        spec = _decode(memoryview(stdin.read()))
    sys.path[1:] = spec["path"]  # the driver's own path ([0]) first, then the driver's
    import importlib

    from driver.config import MetricSpec

    owner: Any = importlib.import_module(spec["module"])
    for part in spec["class"].split("."):
        owner = getattr(owner, part)
    scraper = owner([MetricSpec(**m) for m in spec["metrics"]])
    _follow(scraper, log_fd, wake_fd, out_fd, start, lines_until, bool(skip))
    os._exit(0)  # everything is sent: no interpreter teardown for the driver to wait on


def _follow(scraper: Scraper, log_fd: int, wake_fd: int, out_fd: int, start: int,
            lines_until: int, skip_first_line: bool) -> None:
    """A child's whole life: scrape blocks as the log grows; the rest once the output ends."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # a vanished driver ends the child
    follower = _Follower(_LogScanner(log_fd, scraper, start, lines_until), wake_fd, out_fd)
    try:
        if skip_first_line:
            follower.scanner.skip_line(follower.size())
        follower.run()
    except Exception as exc:  # a scraper bug: the values before this block are kept
        follower.send(None, LAST, f"{type(exc).__name__}: {exc}")


class _Follower:
    """The child's loop: scrape what the log holds, say so, wait for the pump's next poke."""

    def __init__(self, scanner: _LogScanner, wake_fd: int, out_fd: int) -> None:
        self.scanner = scanner
        self.deltas = Deltas(scanner.scraper.found)
        self.wake_fd, self.out_fd = wake_fd, out_fd
        self.pokes = 0  # bytes read from the wake pipe: the driver knows how many it wrote
        self.ended = False

    def run(self) -> None:
        while True:
            while self.scanner.scan_next(self.size()):
                self.send(self.deltas.take(), BUSY)
            if self.ended:
                break
            self.send({}, IDLE)
            self.wait_for_output()
        self.scanner.scan_tail(self.size())
        self.send(self.deltas.take(), LAST)

    def wait_for_output(self) -> None:
        """Block until the pump pokes; then, while less than a block is new, gather pokes for
        up to COALESCE_S (a fast command's output is scraped in large blocks, not chunk by
        chunk: fewer scans and messages)."""
        self._read_pokes(None)
        deadline = time.monotonic() + COALESCE_S
        while not self.ended and self.size() - self.scanner.scanned < BLOCK_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._read_pokes(left)

    def _read_pokes(self, timeout_s: float | None) -> None:
        if timeout_s is not None and not select.select([self.wake_fd], [], [], timeout_s)[0]:
            return
        read = len(os.read(self.wake_fd, 1 << 16))
        self.pokes += read
        self.ended = not read

    def size(self) -> int:
        return os.fstat(self.scanner.fd).st_size

    def send(self, deltas: dict[str, Any] | None, state: str, error: str | None = None) -> None:
        _send(self.out_fd, (self.scanner.scanned, deltas, state, self.pokes, error))


def _send(fd: int, message: tuple[Any, ...]) -> None:
    data = _encode(message)
    _write_all(fd, len(data).to_bytes(_HEADER_BYTES, "little") + data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _encode(message: Any) -> bytes:
    try:
        return b"m" + marshal.dumps(message)
    except ValueError:  # a MetricMatches field of a type marshal does not know
        import pickle

        return b"p" + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def _decode(data: memoryview) -> Any:
    if data[:1] == b"m":
        return marshal.loads(data[1:])  # type: ignore[no-any-return]
    import pickle

    return pickle.loads(data[1:])  # type: ignore[no-any-return]


class _LogScanner:
    """Scrapes the log's whole lines in place, from memory maps of the part not yet scanned:
    blocks of up to ``BLOCK_BYTES``, or one line at a time below ``lines_until``."""

    def __init__(self, fd: int, scraper: Scraper, start: int, lines_until: int) -> None:
        self.fd = fd
        self.scraper = scraper
        self.scanned = start
        self.lines_until = lines_until

    def scan_next(self, size: int) -> bool:
        """Scrape the next block (or line) of whole lines below *size*; False if none yet."""
        start = self.scanned
        if size <= start:
            return False
        base = start - start % mmap.ALLOCATIONGRANULARITY
        end = min(size, start + BLOCK_BYTES)
        view = mmap.mmap(self.fd, end - base, access=mmap.ACCESS_READ, offset=base)
        try:
            nl = view.find if start < self.lines_until else view.rfind
            cut = nl(b"\n", start - base) + 1
            if cut == 0 and end < size:  # a line longer than a block: map up to its end
                view.close()
                end = min(size, start + MAX_LINE_BYTES)
                view = mmap.mmap(self.fd, end - base, access=mmap.ACCESS_READ, offset=base)
                cut = view.find(b"\n", start - base) + 1
            if cut == 0:
                if end - start < MAX_LINE_BYTES:
                    return False  # the line is not finished yet
                cut = end - base  # one gigantic "line": scraped in pieces
            self.scraper.scan_lines(view, start - base, cut)
        finally:
            view.close()
        self.scanned = base + cut
        return True

    def skip_line(self, size: int) -> None:
        """Step over the line that starts here (the patterns stalled on it)."""
        end = min(size, self.scanned + MAX_LINE_BYTES)
        if end <= self.scanned:
            return
        base = self.scanned - self.scanned % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(self.fd, end - base, access=mmap.ACCESS_READ, offset=base) as view:
            cut = view.find(b"\n", self.scanned - base) + 1 or end - base
        self.scanned = base + cut

    def scan_tail(self, size: int) -> None:
        """Scrape the last line, even without its newline (the output has ended)."""
        if self.scanned < size:
            base = self.scanned - self.scanned % mmap.ALLOCATIONGRANULARITY
            self._scan(base, self.scanned - base, size - base)

    def _scan(self, base: int, start: int, cut: int) -> None:
        with mmap.mmap(self.fd, cut, access=mmap.ACCESS_READ, offset=base) as view:
            self.scraper.scan_lines(view, start, cut)
        self.scanned = base + cut
