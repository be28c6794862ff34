"""The command's output on its way: pipe -> the run's log file -> console and scraper.

* :class:`Pump` (its own thread) moves the pipe into the log file, with ``splice`` in the kernel
  where it can, as fast as the command writes: the command is never slowed by the driver.
* :class:`LogReader` (the driving thread) follows the log as it grows: it echoes every new byte
  (:class:`Echo`) and scrapes whole lines in place from a memory map of the new part of the
  file, so the output is never copied into Python objects and memory stays flat.
"""

from __future__ import annotations

import codecs
import errno
import mmap
import os
import sys
import threading
import time

from driver.scrape import MAX_LINE_BYTES, Scraper

CHUNK_BYTES = 1 << 20
F_SETPIPE_SZ = 1031  # Linux: a pipe delivers at most its size per read (64 KiB by default)

ECHO_OFF = "off"
ECHO_PLAIN = "plain"
ECHO_TIMED = "timed"


class Pump(threading.Thread):
    """Moves the pipe into the run's log file and says how far it got.

    Where the kernel can (Linux ``splice``), the bytes go from pipe to file without passing
    through Python; the scraper then reads them back from the page cache. Elsewhere the pump
    reads and writes. Either way the log is the exact output and memory stays flat.
    """

    def __init__(self, fd: int, log_fd: int) -> None:
        super().__init__(name="bench-driver-pump", daemon=True)
        self.fd = fd
        self.log_fd = log_fd
        self.written = 0
        self.done = False
        self.error: str | None = None
        self._moved = threading.Condition()
        self._move = self._splice if hasattr(os, "splice") else self._copy

    def run(self) -> None:
        try:
            while True:
                n = self._move()
                if n == 0:
                    break
                with self._moved:
                    self.written += n
                    self._moved.notify()
        except OSError as exc:
            self.error = f"reading the command's output failed: {exc}"
        finally:
            with self._moved:
                self.done = True
                self._moved.notify()

    def wait(self, seen: int, timeout: float) -> tuple[int, bool]:
        """Block until more than *seen* bytes are in the log, EOF, or *timeout*."""
        with self._moved:
            self._moved.wait_for(lambda: self.written > seen or self.done, timeout)
            return self.written, self.done

    def _splice(self) -> int:
        try:
            return os.splice(self.fd, self.log_fd, CHUNK_BYTES)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            self._move = self._copy  # e.g. a file system that cannot splice
            return self._copy()

    def _copy(self) -> int:
        data = os.read(self.fd, CHUNK_BYTES)
        view = memoryview(data)
        while view:
            view = view[os.write(self.log_fd, view):]
        return len(data)


class Echo:
    """The task's output on the console: raw bytes, or lines prefixed with elapsed time."""

    def __init__(self, mode: str, t0: float) -> None:
        self.mode = mode
        self.t0 = t0
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line_start = True

    def send(self, fd: int, offset: int, count: int) -> None:
        """Echo ``count`` bytes of the log file *fd* from *offset*."""
        if self.mode == ECHO_OFF or count <= 0:
            return
        try:
            if self.mode == ECHO_PLAIN:
                sys.stdout.flush()
                out = sys.stdout.fileno()
                while count > 0:  # file to console in the kernel
                    sent = os.sendfile(out, fd, offset, count)
                    if sent == 0:
                        break
                    offset, count = offset + sent, count - sent
                return
            self._timed(os.pread(fd, count, offset))
        except (OSError, ValueError, AttributeError):
            self.mode = ECHO_OFF  # a closed or unusual console must not stop the benchmark

    def _timed(self, chunk: bytes) -> None:
        pieces = []
        for line in self._decoder.decode(chunk).splitlines(keepends=True):
            if self._line_start:
                pieces.append(f"[{time.monotonic() - self.t0:8.1f}s] ")
            pieces.append(line)
            self._line_start = line.endswith(("\n", "\r"))
        sys.stdout.write("".join(pieces))
        sys.stdout.flush()


def widen_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe so each read brings up to a whole chunk (fewer hand-offs)."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK_BYTES)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default size works too


class LogReader:
    """Follows the log as the pump writes it: echoes every new byte and scrapes whole lines.

    Lines are scraped in place, from a read-only memory map of the new part of the file (the
    page cache the pump just filled), so the output is never copied into Python objects.
    """

    def __init__(self, fd: int, scraper: Scraper, echo: Echo) -> None:
        self.fd = fd
        self.scraper = scraper
        self.echo = echo
        self.seen = 0  # bytes echoed
        self.scanned = 0  # bytes of whole lines scraped

    def catch_up(self, written: int) -> None:
        """Echo up to *written* and scrape every whole line before it."""
        self.echo.send(self.fd, self.seen, written - self.seen)
        self.seen = max(self.seen, written)
        if written <= self.scanned:
            return
        base = self.scanned - self.scanned % mmap.ALLOCATIONGRANULARITY
        with mmap.mmap(self.fd, written - base, access=mmap.ACCESS_READ, offset=base) as view:
            start, end = self.scanned - base, written - base
            cut = view.rfind(b"\n", start, end) + 1
            if cut == 0 and end - start > MAX_LINE_BYTES:
                cut = end  # one gigantic "line": scrape it in pieces
            if cut > start:
                self.scraper.scan_lines(view, start, cut)
                self.scanned = base + cut

    def finish(self, written: int) -> None:
        """Scrape the last line, which may lack its newline."""
        self.catch_up(written)
        if self.scanned < written:
            tail = os.pread(self.fd, written - self.scanned, self.scanned) + b"\n"
            self.scraper.scan_lines(tail, 0, len(tail))
            self.scanned = written
