"""driver.output: the pump and the console echo, on real files and pipes."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from driver.output import ECHO_PLAIN, ECHO_TIMED, Echo, Pump


class WrittenLog:
    """Stands in for the pump of a finished run: the whole log is written."""

    def __init__(self, path: Path) -> None:
        self.size = path.stat().st_size

    def wait(self, seen: int, timeout: float) -> tuple[int, bool]:
        return self.size, True


def echo_into(path: Path, mode: str, out_fd: int, within_s: float = 5.0) -> Echo:
    """Echo the log at *path* to *out_fd* on the echo's own thread, as a run does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        echo = Echo(mode, time.monotonic(), fd, WrittenLog(path), out_fd)  # type: ignore[arg-type]
    finally:
        os.close(fd)  # the echo holds its own descriptor
    echo.finish(within_s)
    echo.start()
    return echo


def test_timed_echo_prefixes_every_line_once_even_across_steps(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("driver.output.ECHO_STEP_BYTES", 15)  # steps end inside lines
    log = tmp_path / "log"
    log.write_bytes(b"first line\nsecond \xff line\nthird")
    with open(tmp_path / "console", "wb") as console:
        echo = echo_into(log, ECHO_TIMED, console.fileno())
        assert echo.finished.wait(10)
    lines = (tmp_path / "console").read_text("utf-8").splitlines()
    assert len(lines) == 3
    assert all(re.match(r"\[ +\d+\.\ds\] ", line) for line in lines)
    assert lines[1].endswith("second \ufffd line")  # invalid UTF-8 replaced, never fatal
    assert echo.missed(log.stat().st_size) == 0


def test_plain_echo_is_the_exact_log(tmp_path: Path):
    log = tmp_path / "log"
    log.write_bytes(bytes(range(256)) * 5000 + b"no newline at the end")
    with open(tmp_path / "console", "wb") as console:
        echo = echo_into(log, ECHO_PLAIN, console.fileno())
        assert echo.finished.wait(10)
    assert (tmp_path / "console").read_bytes() == log.read_bytes()


def test_a_console_that_cannot_keep_up_gets_a_note_of_what_it_skipped(tmp_path: Path):
    log = tmp_path / "log"
    lines = [b"line %07d of the task's output\n" % i for i in range(300_000)]  # ~9 MiB
    log.write_bytes(b"".join(lines))
    read_fd, write_fd = os.pipe()
    got = bytearray()

    def slow_reader() -> None:  # about 400 kB/s: far slower than the log came
        while chunk := os.read(read_fd, 4096):
            got.extend(chunk)
            time.sleep(0.01)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    echo = echo_into(log, ECHO_PLAIN, write_fd, within_s=0.5)
    assert echo.finished.wait(30)
    os.close(write_fd)
    reader.join()
    text, size = bytes(got), log.stat().st_size
    note = re.compile(rb"\n?\[bench-driver: the console is too slow: skipped ([\d,]+) bytes of "
                      rb"output here \(output.log has every byte\)\]\n")
    notes = list(note.finditer(text))
    skipped = sum(int(n.group(1).replace(b",", b"")) for n in notes)
    assert notes and skipped == echo.skipped == echo.missed(size)
    log_bytes = log.read_bytes()
    pieces = note.split(text)[::2]  # the echoed output between the notes
    assert log_bytes.startswith(pieces[0]) and log_bytes.endswith(pieces[-1])
    echoed = sum(map(len, pieces))  # a note's leading newline is not the log's: +-1 per note
    assert abs(echoed + skipped - size) <= len(notes)


def test_pump_moves_every_byte_and_says_when_it_is_done(tmp_path: Path):
    read_fd, write_fd = os.pipe()
    log_fd = os.open(tmp_path / "log", os.O_WRONLY | os.O_CREAT)
    moved, done = [], threading.Event()
    pump = Pump(read_fd, log_fd, on_moved=lambda: moved.append(1), on_done=done.set)
    pump.start()
    payload = os.urandom(3 << 20)
    view = memoryview(payload)
    while view:
        view = view[os.write(write_fd, view[:65536]):]
    os.close(write_fd)
    assert done.wait(30)
    pump.join()
    os.close(read_fd)
    os.close(log_fd)
    assert (tmp_path / "log").read_bytes() == payload
    assert pump.written == len(payload) and moved and pump.error is None
