"""driver.runner in-process: the tree never outlives the driver, even when the driver fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from conftest import alive, script
from driver.config import MetricSpec
from driver.runner import RunRequest, run_command
from driver.scrape import Scraper


class BrokenScraper(Scraper):
    """A scraper that fails on the first output it sees, like a driver bug would."""

    def scan_lines(self, buf, start, end):  # type: ignore[no-untyped-def]
        raise MemoryError("simulated failure inside the driver")


def test_a_failing_driver_ends_the_whole_tree_before_raising(tmp_path: Path):
    pidfile = tmp_path / "pids.txt"
    request = RunRequest(
        command=f"{sys.executable} {script('stubborn.py')} {pidfile} --double-fork",
        cwd=tmp_path, log_path=tmp_path / "output.log", kill_grace_s=0.3, echo="off")
    with pytest.raises(MemoryError):
        run_command(request, BrokenScraper([MetricSpec("v", r"value: (\S+)", "last")]), [])
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2 and not any(alive(p) for p in pids)
    assert os.path.exists(tmp_path / "output.log")


def test_output_is_logged_byte_for_byte_and_scraped(tmp_path: Path):
    payload = b"".join(b"line %d value: %d\n" % (i, i) for i in range(50000)) + b"tail value: 9"
    (tmp_path / "payload").write_bytes(payload)
    request = RunRequest(command="cat payload", cwd=tmp_path, log_path=tmp_path / "output.log",
                         echo="off")
    scraper = Scraper([MetricSpec("v", r"value: (\d+)", "last")])
    outcome = run_command(request, scraper, [])
    assert outcome.exit_code == 0 and not outcome.timed_out
    assert (tmp_path / "output.log").read_bytes() == payload
    found = scraper.close()["v"]
    assert found.values == [float(i) for i in range(50000)] + [9.0]
