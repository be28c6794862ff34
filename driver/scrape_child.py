"""The scraping process's own program (driver.scrape_process starts it, one per scraper).

It runs in a fresh interpreter, ``python -S -E -c "... child_main(argv)"``: the scraper's class
and metric specs come on its stdin, the log, wake and results descriptors and its plan (where to
start, up to where to go line by line, whether to skip the first line) in *argv*. It scrapes the
log in place, block by block (or line by line), and after each block sends the driver one framed
message: how far it got, what each metric gained (driver.scrape_deltas), and whether it is now
busy, idle (waiting for the pump's next poke) or done. Messages are ``marshal`` (built in: nothing
to import), ``pickle`` for what marshal cannot carry.
"""

from __future__ import annotations

import marshal
import mmap
import os
import select
import signal
import sys
import time
from typing import Any, Sequence

from driver import proctree
from driver.scrape import MAX_LINE_BYTES, Scraper
from driver.scrape_deltas import Deltas

BLOCK_BYTES = 1 << 20
COALESCE_S = 0.02  # a child woken with less than a block to scrape waits this long for more
HEADER_BYTES = 8
BUSY, IDLE, LAST = "busy", "idle", "last"  # what a child says it is doing after a message


def child_main(argv: Sequence[str]) -> None:
    """The scraping child's program (``python -S -E -c ...``): the scraper's spec on stdin;
    *argv*: the log, wake and results descriptors, then the plan (start, lines_until, skip)."""
    for sig in proctree.STOP_SIGNALS:  # the driver decides when this process ends
        signal.signal(sig, signal.SIG_IGN)
    log_fd, wake_fd, out_fd, start, lines_until, skip = map(int, argv)
    try:
        scraper = _build_scraper()
    except Exception as exc:  # e.g. a Scraper subclass this interpreter cannot import
        _send(out_fd, (start, None, LAST, 0, f"cannot build the scraper: "
                                              f"{type(exc).__name__}: {exc}"))
        os._exit(1)
    _follow(scraper, log_fd, wake_fd, out_fd, start, lines_until, bool(skip))
    os._exit(0)  # everything is sent: no interpreter teardown for the driver to wait on


def _build_scraper() -> Scraper:
    """The scraper described on stdin (see ``scrape_process._spec``), its class imported by
    name."""
    import importlib

    from driver.config import MetricSpec

    with os.fdopen(0, "rb") as stdin:
        spec = decode(memoryview(stdin.read()))
    sys.path[1:] = spec["path"]  # the driver's own path ([0]) first, then the driver's
    owner: Any = importlib.import_module(spec["module"])
    for part in spec["class"].split("."):
        owner = getattr(owner, part)
    return owner([MetricSpec(**m) for m in spec["metrics"]])  # type: ignore[no-any-return]


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
    data = encode(message)
    write_all(fd, len(data).to_bytes(HEADER_BYTES, "little") + data)


def write_all(fd: int, data: bytes) -> None:
    """Write all of *data* to *fd* (a pipe may take it in parts)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def encode(message: Any) -> bytes:
    """*message* as bytes: ``m`` + marshal, or ``p`` + pickle for what marshal cannot carry."""
    try:
        return b"m" + marshal.dumps(message)
    except ValueError:  # a MetricMatches field of a type marshal does not know
        import pickle

        return b"p" + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: memoryview) -> Any:
    """The message :func:`encode` made."""
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
