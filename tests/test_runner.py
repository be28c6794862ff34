"""driver.runner in-process: the tree never outlives the driver, the helpers are not the task."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import pytest

import driver.runner as runner
from conftest import alive, script
from driver import proctree
from driver.config import MetricSpec
from driver.runner import RunRequest, StopRequests, run_command
from driver.sampling import RunExit, Sampler, SamplerSummary
from driver.scrape import Scraper

VALUE = MetricSpec("v", r"value: (\S+)", "last")


class BrokenScraper(Scraper):
    """A scraper that fails on a line saying 'boom', like a bug in it would."""

    def scan_lines(self, buf, start, end):  # type: ignore[no-untyped-def]
        if buf.find(b"boom", start, end) >= 0:
            raise MemoryError("simulated failure inside the scraper")
        super().scan_lines(buf, start, end)


class PidRecorder(Sampler):
    """Keeps every tree it is shown, and the driver's helpers at that moment (its descendants in
    its own session: the command and all its processes are in sessions of their own)."""

    name = "pids"

    def __init__(self) -> None:
        self.seen: list[tuple[list[int], set[int]]] = []

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        helpers = {p for p in proctree.descendants(os.getpid())
                   if (s := proctree.stat(p)) and s.session == os.getsid(0)}
        self.seen.append((list(pids), helpers))
        return {}

    def summary(self, exit: RunExit) -> SamplerSummary:
        return SamplerSummary()


def stubborn(tmp_path: Path, **kwargs: object) -> RunRequest:
    command = f"{sys.executable} {script('stubborn.py')} {tmp_path / 'pids.txt'} --double-fork"
    return RunRequest(command=command, cwd=tmp_path, log_path=tmp_path / "output.log",
                      kill_grace_s=0.3, echo="off", **kwargs)  # type: ignore[arg-type]


def test_a_failing_driver_ends_the_whole_tree_before_raising(tmp_path: Path, monkeypatch):
    pidfile = tmp_path / "pids.txt"
    follow = runner._Run._follow_output

    def failing(self: runner._Run) -> None:  # a bug in the control loop, once the tree exists
        if pidfile.exists():
            raise MemoryError("simulated failure inside the driver")
        follow(self)

    monkeypatch.setattr(runner._Run, "_follow_output", failing)
    with pytest.raises(MemoryError):
        run_command(stubborn(tmp_path), Scraper([VALUE]), [])
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) == 2 and not any(alive(p) for p in pids)
    assert os.path.exists(tmp_path / "output.log")
    assert helpers_end()


def helpers_end(limit_s: float = 5.0) -> bool:
    """Whether the driver's helpers have all exited (the watchdog does so soon after goodbye)."""
    deadline = time.monotonic() + limit_s
    while any(alive(p) for p in proctree.HELPERS) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not any(alive(p) for p in proctree.HELPERS)


def test_a_failing_scraper_loses_the_values_after_the_failure_not_the_run(tmp_path: Path):
    payload = b"".join(b"value: %d\n" % i for i in range(300000)) + b"boom\nvalue: -1\n"
    (tmp_path / "payload").write_bytes(payload)
    request = RunRequest(command="cat payload", cwd=tmp_path, log_path=tmp_path / "output.log",
                         echo="off")
    scraper = BrokenScraper([VALUE])
    outcome = run_command(request, scraper, [])
    assert outcome.exit_code == 0 and not outcome.timed_out
    assert outcome.scrape.stopped == "the scraper failed: MemoryError: simulated failure " \
        "inside the scraper"
    values = scraper.close()["v"].values
    assert 0 < len(values) < 300000 and values == [float(i) for i in range(len(values))]
    assert f"scraping stopped at byte {outcome.scrape.scraped_bytes} of {len(payload)} of " \
        f"output.log" in outcome.notes[0]
    assert (tmp_path / "output.log").read_bytes() == payload


def test_output_is_logged_byte_for_byte_and_scraped(tmp_path: Path):
    payload = b"".join(b"line %d value: %d\n" % (i, i) for i in range(300000)) + b"tail value: 9"
    (tmp_path / "payload").write_bytes(payload)  # several blocks of the scraper's process
    request = RunRequest(command="cat payload", cwd=tmp_path, log_path=tmp_path / "output.log",
                         echo="off")
    scraper = Scraper([MetricSpec("v", r"value: (\d+)", "last")])
    outcome = run_command(request, scraper, [])
    assert outcome.exit_code == 0 and not outcome.timed_out and outcome.scrape.complete
    assert (tmp_path / "output.log").read_bytes() == payload
    found = scraper.close()["v"]
    assert found.values == [float(i) for i in range(300000)] + [9.0]
    assert found.matches == 300001 and outcome.notes == ()


def test_the_helpers_are_never_part_of_the_task_tree(tmp_path: Path):
    recorder = PidRecorder()
    request = RunRequest(command=f"{sys.executable} {script('hold_memory.py')} 20 0.6",
                         cwd=tmp_path, log_path=tmp_path / "output.log", echo="off",
                         sample_interval_s=0.02)
    outcome = run_command(request, Scraper([MetricSpec("s", r"speed: (\S+)", "last")]),
                          [recorder])
    assert outcome.exit_code == 0
    with_tree = [(pids, helpers) for pids, helpers in recorder.seen if pids]
    assert with_tree and all(helpers for _, helpers in with_tree)  # the watchdog, from the start
    assert any(len(helpers) >= 2 for _, helpers in with_tree)  # and the scraper, with output
    assert all(not set(pids) & helpers for pids, helpers in with_tree)
    assert len(outcome.exit.maxrss_kib) == 1  # the command's own wait4: no helper was reaped
    assert helpers_end()


def test_a_signal_before_the_start_starts_nothing(tmp_path: Path):
    marker = tmp_path / "started"
    request = RunRequest(command=f"touch {marker}", cwd=tmp_path,
                         log_path=tmp_path / "output.log", echo="off")
    with StopRequests().installed() as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        outcome = run_command(request, Scraper([VALUE]), [], stop=stop)
    assert outcome.interrupted_by == "SIGHUP" and outcome.exit_code is None
    assert not marker.exists()


def test_a_stuck_scraper_loses_only_the_line_it_is_stuck_on(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(runner, "SCRAPE_STALL_S", 0.3)  # no timeout, no signal: found stuck
    request = RunRequest(command=f"{sys.executable} {script('backtrack.py')} 40 0",
                         cwd=tmp_path, log_path=tmp_path / "output.log", echo="off")
    scraper = Scraper([VALUE, MetricSpec("a", r"^(a+)+$", "last", optional=True)])
    outcome = run_command(request, scraper, [])
    assert scraper.close()["v"].values == [1.0, 2.0]  # the lines before and after it
    assert outcome.scrape.skipped_lines == (len("value: 1\n"),)
    assert outcome.scrape.stopped is None and outcome.exit_code == 0
    assert "line at byte 9 was not scraped" in outcome.notes[0]


def test_a_scraper_the_scraping_process_cannot_build_is_reported(tmp_path: Path):
    class Local(Scraper):  # not importable by name from another interpreter
        pass

    request = RunRequest(command="echo value: 1", cwd=tmp_path, log_path=tmp_path / "output.log",
                         echo="off")
    outcome = run_command(request, Local([VALUE]), [])
    assert outcome.exit_code == 0
    assert outcome.scrape.stopped is not None
    assert outcome.scrape.stopped.startswith("the scraper failed: cannot build the scraper: ")
    assert (tmp_path / "output.log").read_bytes() == b"value: 1\n"
