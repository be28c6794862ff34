"""The sampling thread (driver/sampling.py): a fixed tick rate, slow samplers on threads of their
own, one timeline row per tick. Deterministic: samplers block on events the test controls."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import Mapping, Sequence

import pytest

from conftest import TickCounter
from driver.sampling import RunExit, Sampler, SamplerSummary, SamplingThread, next_tick


class Counting(Sampler):
    """An inline sampler: its column is the tick count it has seen."""

    name = "counting"
    columns = ("seen",)

    def __init__(self) -> None:
        self.seen = 0
        self.stopped = False

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        self.seen += 1
        return {"seen": self.seen}

    def stop(self) -> None:
        self.stopped = True

    def summary(self, exit: RunExit) -> SamplerSummary:
        return SamplerSummary()


class Blocking(Sampler):
    """A sampler on its own thread whose reads wait until the test releases them."""

    name = "blocking"
    columns = ("slow",)
    own_thread = True

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.reads = 0
        self.threads: set[str] = set()

    def start(self) -> None:
        self.threads.add(threading.current_thread().name)

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(60)
        self.reads += 1
        return {"slow": 1.0}

    def stop(self) -> None:
        self.threads.add(threading.current_thread().name)

    def summary(self, exit: RunExit) -> SamplerSummary:
        return SamplerSummary()


class Raising(Counting):
    name = "raising"
    columns = ()

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        raise RuntimeError("broken sampler")


@pytest.mark.parametrize(
    "tick, elapsed_s, expected",
    [
        (0, 0.03, 1),   # on time: the next tick is due at 0.1
        (0, 0.15, 1),   # late by less than an interval: taken at once
        (0, 0.37, 3),   # 0.1 and 0.2 are gone: skipped, never queued
        (5, 0.52, 6),
        (9, 2.0, 20),
    ],
)
def test_ticks_are_due_on_a_fixed_schedule(tick: int, elapsed_s: float, expected: int) -> None:
    assert next_tick(tick, elapsed_s, 0.1) == expected


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_a_blocked_sampler_does_not_delay_the_others(tmp_path: Path) -> None:
    inline, slow, ticks = Counting(), Blocking(), TickCounter()
    path = tmp_path / "timeline.csv"
    thread = SamplingThread([inline, slow], 0.01, path, lambda: [], ticks.tick)
    thread.start()
    assert slow.entered.wait(60)  # the slow sampler is inside its first read
    ticks.wait(5)  # and the inline sampler goes on ticking meanwhile
    slow.release.set()
    thread.stop()
    written = rows(path)
    assert [int(r["seen"]) for r in written] == list(range(1, len(written) + 1))  # a row per tick
    assert written[0]["slow"] == "1.0"  # the blocked read's row waited for it, in order
    assert sum(not r["slow"] for r in written) >= 5  # the ticks it could not take stay empty
    assert any("'blocking' was still reading an earlier tick" in e for e in thread.errors)
    assert inline.stopped and "bench-driver-sampler" not in slow.threads
    assert len(slow.threads) == 1  # start, sample and stop on the sampler's own thread


def test_a_raising_sampler_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    inline, ticks = Counting(), TickCounter()
    thread = SamplingThread([Raising(), inline], 0.01, tmp_path / "t.csv", lambda: [], ticks.tick)
    thread.start()
    ticks.wait(3)
    thread.stop()
    reported = [e for e in thread.errors if not e.startswith("sampling fell behind")]
    assert reported == ["sampler 'raising': RuntimeError: broken sampler"]  # once, not per tick
    assert inline.seen == thread.samples >= 3
