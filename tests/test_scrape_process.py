"""driver.scrape_process, driver.scrape_child and driver.scrape_deltas: the scraper's own
process, on real files."""

from __future__ import annotations

import collections
import os
import select
import time
from dataclasses import dataclass, field
from pathlib import Path

import driver.scrape_child as scrape_child
from driver.config import MetricSpec
from driver.scrape import Scraper
from driver.scrape_child import _LogScanner, decode, encode
from driver.scrape_deltas import Deltas, merge
from driver.scrape_process import ScrapeProcess

VALUE = MetricSpec("v", r"v=(\d+)", "last")
Point = collections.namedtuple("Point", "x y")


@dataclass
class Matches:
    """A MetricMatches-like dataclass with one field of each kind the deltas know."""

    values: list[float] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    matches: int = 0
    last: object = None


def test_deltas_send_new_items_and_increases_and_merge_adds_them():
    child = {"m": Matches(values=[1.0], examples=["x"], matches=1, last="a")}
    deltas = Deltas(child)  # what the child holds already counts as sent
    parent = {"m": Matches(values=[1.0], examples=["x"], matches=1, last="a")}
    child["m"].values += [2.0, 3.0]
    child["m"].examples.append("y")
    child["m"].matches += 2
    child["m"].last = Point(1, 2)
    merge(parent, deltas.take())
    assert parent["m"] == Matches([1.0, 2.0, 3.0], ["x", "y"], 3, Point(1, 2))
    assert child["m"].values == []  # sent once, then dropped in the child
    assert deltas.take() == {}  # nothing new


def test_messages_travel_as_marshal_or_pickle_when_marshal_cannot():
    plain = (5, {"v": {"values": [1.5], "matches": 1}}, "busy", 2, None)
    odd = (5, {"v": {"last": Point(1, 2)}}, "last", 2, None)
    assert encode(plain)[:1] == b"m" and decode(memoryview(encode(plain))) == plain
    assert encode(odd)[:1] == b"p" and decode(memoryview(encode(odd))) == odd


def scan_all(path: Path, scanner_start: int = 0, lines_until: int = -1) -> tuple[Scraper, int]:
    scraper = Scraper([VALUE])
    fd = os.open(path, os.O_RDONLY)
    try:
        scanner = _LogScanner(fd, scraper, scanner_start, lines_until)
        steps = 0
        while scanner.scan_next(path.stat().st_size):
            steps += 1
        scanner.scan_tail(path.stat().st_size)
    finally:
        os.close(fd)
    return scraper, steps


def test_scanner_goes_block_by_block_and_ends_with_the_unfinished_line(tmp_path, monkeypatch):
    monkeypatch.setattr(scrape_child, "BLOCK_BYTES", 4096)
    log = tmp_path / "log"
    log.write_bytes(b"".join(b"v=%d\n" % i for i in range(5000)) + b"v=77")
    scraper, steps = scan_all(log)
    assert scraper.close()["v"].values == [float(i) for i in range(5000)] + [77.0]
    assert steps > 5  # blocks, not one pass


def test_scanner_finds_the_end_of_a_line_longer_than_a_block(tmp_path, monkeypatch):
    monkeypatch.setattr(scrape_child, "BLOCK_BYTES", 4096)
    log = tmp_path / "log"
    log.write_bytes(b"v=1\n" + b"x" * 20000 + b" v=2\nv=3\n")
    scraper, _ = scan_all(log)
    assert scraper.close()["v"].values == [1.0, 2.0, 3.0]


def test_scanner_cuts_a_gigantic_line_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(scrape_child, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(scrape_child, "MAX_LINE_BYTES", 10000)
    log = tmp_path / "log"
    log.write_bytes(b"v=1 " + b"x" * 25000 + b" v=2\nv=3\n")
    scraper, _ = scan_all(log)
    assert scraper.close()["v"].values == [1.0, 2.0, 3.0]  # each piece is its own "line"


def test_scanner_goes_line_by_line_below_lines_until_and_can_skip_a_line(tmp_path):
    log = tmp_path / "log"
    log.write_bytes(b"v=1\nv=2\nv=3\nv=4\n")
    scraper, steps = scan_all(log, lines_until=8)
    assert steps == 3 and scraper.close()["v"].values == [1.0, 2.0, 3.0, 4.0]
    fd = os.open(log, os.O_RDONLY)
    try:
        scanner = _LogScanner(fd, Scraper([VALUE]), 4, -1)
        scanner.skip_line(log.stat().st_size)
        assert scanner.scanned == 8
    finally:
        os.close(fd)


def collect_until(scrape: ScrapeProcess, done: object, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        select.select([scrape.fd], [], [], 0.1)
        scrape.collect()
    assert done(), "the scraper's process sent nothing"  # type: ignore[operator]


def test_the_child_follows_the_log_as_it_grows_and_finishes_at_its_end(tmp_path):
    log = tmp_path / "log"
    write_fd = os.open(log, os.O_WRONLY | os.O_CREAT)
    read_fd = os.open(log, os.O_RDONLY)
    scraper = Scraper([VALUE])
    scrape = ScrapeProcess(scraper, read_fd)
    try:
        os.write(write_fd, b"v=1\nv=2\nv=")
        scrape.wake()
        collect_until(scrape, lambda: scraper.found["v"].values == [1.0, 2.0])
        os.write(write_fd, b"3")  # the last line never gets its newline
        scrape.end_of_output()
        collect_until(scrape, lambda: scrape.finished)
        end = scrape.end()
    finally:
        scrape.close()
        os.close(write_fd)
        os.close(read_fd)
    assert scraper.close()["v"].values == [1.0, 2.0, 3.0]
    assert end.complete and end.scraped_bytes == end.log_bytes == 11
