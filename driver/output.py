"""The command's output on its way: pipe -> the run's log file -> the console (and the scraper).

* :class:`Pump` (its own thread) moves the pipe into the log file, with ``splice`` in the kernel
  where it can, as fast as the command writes: the command is never slowed by the driver.
* :class:`Echo` (its own thread) copies the log to the console as it grows: ``sendfile`` in the
  kernel for a file or a pipe, lines prefixed with the elapsed time on a terminal. A console that
  cannot keep up gets the output late, then skipped, with a note of how many bytes it skipped;
  the log keeps every byte, and the run's control thread never waits on the console for long.
* the scraper reads the log too, in its own process (driver.scrape_process).
"""

from __future__ import annotations

import codecs
import errno
import os
import select
import sys
import threading
import time
from typing import Callable

CHUNK_BYTES = 1 << 20
F_SETPIPE_SZ = 1031  # Linux: a pipe delivers at most its size per read (64 KiB by default)

ECHO_OFF = "off"
ECHO_PLAIN = "plain"
ECHO_TIMED = "timed"

ECHO_STEP_BYTES = 256 << 10  # one write to the console: bounded work per step
ECHO_LATE_S = 1.0  # while the command runs, the console may fall this far behind (at its speed)
ECHO_MIN_BACKLOG_BYTES = 1 << 20  # ... and never less than this, before output is skipped
ECHO_FINISH_S = 0.25  # once the output has ended, the time the console gets to catch up
ECHO_TERMINAL_NICE = 10  # a terminal's echo yields the CPU to the scrape (Linux: per thread)
_LOOK_BACK_BYTES = 64 << 10  # where skipped output resumes: the start of the last line in this


def _nothing() -> None:
    pass


#: Errors of writing the log (not of reading the command's output): a storage failure.
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)


class Pump(threading.Thread):
    """Moves the pipe into the run's log file and says how far it got.

    Where the kernel can (Linux ``splice``), the bytes go from pipe to file without passing
    through Python; the echo and the scraper then read them back from the page cache. Elsewhere
    the pump reads and writes. Either way the log is the exact output and memory stays flat.
    ``on_moved`` is called after each move, ``on_done`` once at the end (on this thread).
    """

    def __init__(self, fd: int, log_fd: int, on_moved: Callable[[], None] = _nothing,
                 on_done: Callable[[], None] = _nothing) -> None:
        super().__init__(name="bench-driver-pump", daemon=True)
        self.fd = fd
        self.log_fd = log_fd
        self.written = 0
        self.done = False
        self.error: str | None = None
        self.log_full = False  # the error was the log's file system refusing to write
        self.on_moved = on_moved
        self.on_done = on_done
        self._moved = threading.Condition()
        self._move = self._splice if hasattr(os, "splice") else self._copy

    def run(self) -> None:
        """Move until EOF (or a read error, kept in ``error``); then ``done``."""
        try:
            while True:
                n = self._move()
                if n == 0:
                    break
                with self._moved:
                    self.written += n
                    self._moved.notify_all()
                self.on_moved()
        except OSError as exc:
            self.log_full = exc.errno in _WRITE_ERRORS
            self.error = (f"writing output.log failed: {exc.strerror or exc}" if self.log_full
                          else f"reading the command's output failed: {exc}")
        finally:
            with self._moved:
                self.done = True
                self._moved.notify_all()
            self.on_done()

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


def widen_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe so each read brings up to a whole chunk (fewer hand-offs)."""
    try:
        import fcntl

        fcntl.fcntl(fd, F_SETPIPE_SZ, CHUNK_BYTES)
    except (ImportError, OSError):
        pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default size works too


def _yield_cpu(nice: int) -> None:
    """Lower this thread's priority (a terminal is for a human: what it cannot take in the CPU
    the run leaves it is skipped, with a note), where the platform allows it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (AttributeError, OSError):
        pass


def console_fd() -> int | None:
    """The descriptor of standard output, or None when there is none (a closed console)."""
    try:
        return sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return None


class Echo(threading.Thread):
    """Copies the log to the console as the pump writes it: raw bytes, or lines prefixed with the
    elapsed time (``timed``, for a terminal).

    The console may fall behind by what it takes in ``ECHO_LATE_S`` at its own measured speed;
    beyond that the oldest output is skipped, and a note says how many bytes. Once the output
    has ended (:meth:`finish`) it gets ``ECHO_FINISH_S`` to catch up. A console that accepts
    nothing at all (a pipe nobody reads) holds only this thread, which the run leaves behind.
    """

    def __init__(self, mode: str, t0: float, log_fd: int, pump: Pump, out_fd: int,
                 on_done: Callable[[], None] = _nothing) -> None:
        super().__init__(name="bench-driver-echo", daemon=True)
        self.mode = mode
        self.t0 = t0
        self.fd = os.dup(log_fd)  # its own: this thread may outlive the run's descriptors
        self.pump = pump
        self.out_fd = out_fd
        self.on_done = on_done
        self.sent = 0
        self.skipped = 0
        self.speed = 0.0  # bytes/s the console took, smoothed; 0 until measured
        self.finished = threading.Event()
        self._finish_by: float | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line_start = True

    def finish(self, within_s: float = ECHO_FINISH_S) -> None:
        """The output has ended: catch up within *within_s*, then skip the rest (noted)."""
        if self._finish_by is None:
            self._finish_by = time.monotonic() + within_s

    def missed(self, log_bytes: int) -> int:
        """Bytes of the log the console never got (skipped, or not sent yet)."""
        return self.skipped + max(0, log_bytes - self.sent)

    def run(self) -> None:
        """Echo until the log is complete and sent (or skipped), or the console is gone."""
        try:
            if self.mode == ECHO_TIMED:
                _yield_cpu(ECHO_TERMINAL_NICE)
            sys.stdout.flush()  # what the driver printed before comes first
            self._follow()
        except (OSError, ValueError):
            pass  # the console is gone (EPIPE: `| head`): the benchmark goes on without it
        finally:
            os.close(self.fd)
            self.finished.set()
            self.on_done()

    def _follow(self) -> None:
        while True:
            written, ended = self.pump.wait(self.sent, 0.1)
            if self._finish_by is not None and time.monotonic() >= self._finish_by:
                self._skip(written)
                return
            if self.sent >= written:
                if ended:
                    return
                continue
            if self._too_far_behind(written):
                self._skip(self._resume_point(written))
            self._step(min(written - self.sent, ECHO_STEP_BYTES))

    def _too_far_behind(self, written: int) -> bool:
        """Whether the console is behind by more than it takes in ECHO_LATE_S (once its speed is
        known: a console is never skipped before it has been measured)."""
        allowed = max(ECHO_MIN_BACKLOG_BYTES, self.speed * ECHO_LATE_S)
        return self.speed > 0 and written - self.sent > allowed

    def _step(self, count: int) -> None:
        t = time.perf_counter()
        if self.mode == ECHO_TIMED:
            self._write(self._timed(os.pread(self.fd, count, self.sent)))
            sent = count
        else:
            sent = self._sendfile(count)
        elapsed = time.perf_counter() - t
        self.sent += sent
        if elapsed > 0:
            sample = sent / elapsed
            self.speed = sample if not self.speed else 0.7 * self.speed + 0.3 * sample

    def _sendfile(self, count: int) -> int:
        while True:
            try:
                sent = os.sendfile(self.out_fd, self.fd, self.sent, count)  # in the kernel
            except BlockingIOError:  # a console someone made non-blocking
                select.select([], [self.out_fd], [], 0.1)
                continue
            if sent == 0:
                raise OSError("sendfile: the log ended early")
            return sent

    def _resume_point(self, written: int) -> int:
        """The start of the last line before *written* (where the echo resumes after a skip)."""
        start = max(self.sent, written - _LOOK_BACK_BYTES)
        tail = os.pread(self.fd, written - start, start)
        return start + tail.rfind(b"\n") + 1 if b"\n" in tail else written

    def _skip(self, to: int) -> None:
        gap = to - self.sent
        if gap <= 0:
            return
        lead = "" if self._at_line_start() else "\n"
        self.skipped += gap
        self.sent = to
        self._decoder.reset()
        self._line_start = True
        self._write(f"{lead}[bench-driver: the console is too slow: skipped {gap:,} bytes of "
                    f"output here (output.log has every byte)]\n".encode())

    def _at_line_start(self) -> bool:
        if self.mode == ECHO_TIMED or self.sent == 0:
            return self._line_start
        return os.pread(self.fd, 1, self.sent - 1) in (b"\n", b"\r")

    def _timed(self, chunk: bytes) -> bytes:
        pieces = []
        for line in self._decoder.decode(chunk).splitlines(keepends=True):
            if self._line_start:
                pieces.append(f"[{time.monotonic() - self.t0:8.1f}s] ")
            pieces.append(line)
            self._line_start = line.endswith(("\n", "\r"))
        return "".join(pieces).encode("utf-8", "replace")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.out_fd, view):]
            except BlockingIOError:
                select.select([], [self.out_fd], [], 0.1)
