"""driver.output: the console echo and the log reader, on real files."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from driver.config import MetricSpec
from driver.output import ECHO_TIMED, Echo, LogReader
from driver.scrape import Scraper


def test_timed_echo_prefixes_every_line_once_even_across_chunks(tmp_path: Path, capsys):
    log = tmp_path / "log"
    log.write_bytes(b"first line\nsecond \xff line\nthird")
    fd = os.open(log, os.O_RDONLY)
    try:
        echo = Echo(ECHO_TIMED, time.monotonic())
        echo.send(fd, 0, 15)  # ends inside the second line
        echo.send(fd, 15, 100)
    finally:
        os.close(fd)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(re.match(r"\[ +\d+\.\ds\] ", line) for line in lines)
    assert lines[1].endswith("second \ufffd line")  # invalid UTF-8 replaced, never fatal


def test_log_reader_scrapes_whole_lines_as_the_log_grows_and_the_last_one_at_the_end(tmp_path):
    log = tmp_path / "log"
    scraper = Scraper([MetricSpec("v", r"v=(\d+)", "last")])
    fd = os.open(log, os.O_RDWR | os.O_CREAT)
    try:
        reader = LogReader(fd, scraper, Echo("off", 0.0))
        os.write(fd, b"v=1\nv=2\nv=3")  # the third line is not finished yet
        reader.catch_up(os.fstat(fd).st_size)
        assert scraper.found["v"].values == [1.0, 2.0]
        os.write(fd, b"4\nv=5")
        reader.finish(os.fstat(fd).st_size)
    finally:
        os.close(fd)
    assert scraper.close()["v"].values == [1.0, 2.0, 34.0, 5.0]
