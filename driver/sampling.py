"""Samplers poll resources of the running task on one background thread, off the log path.

Each tick the thread lists the task's process tree once (from /proc, cheap), hands that list to
every active sampler, and appends one row to the run's ``timeline.csv``. When the run ends each
sampler summarises: flat metrics for the result file and details for the run record.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from driver import proctree

DEFAULT_INTERVAL_S = 0.1


@dataclass(frozen=True)
class SamplingSettings:
    """What samplers are told about a run before it starts."""

    interval_s: float = DEFAULT_INTERVAL_S
    gpus: tuple[int, ...] = ()  # NVML indices of the GPUs handed to the task
    gpu_sampling: bool = True  # False when the user switched GPU sampling off


@dataclass(frozen=True)
class RunExit:
    """Kernel accounting of the finished tree, from ``wait4`` on every process the driver reaped.

    ``spawn_floor_kib`` is the driver's own peak RSS when it started the command: a child's
    ``ru_maxrss`` never reads below it (fork/vfork accounting), so a value at or under it only
    says "no more than this" and the samplers' polling decides.
    """

    maxrss_kib: tuple[int, ...] = ()
    spawn_floor_kib: int = 0


@dataclass(frozen=True)
class SamplerSummary:
    """A sampler's findings: flat metrics (``{name: float}``), record details, and errors."""

    metrics: Mapping[str, float] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    errors: Sequence[str] = ()


class Sampler(ABC):
    """Polls one resource. ``columns`` names what :meth:`sample` adds to each timeline row."""

    name: str = "sampler"
    columns: tuple[str, ...] = ()

    def start(self) -> None:
        """Called once on the sampling thread before the first sample."""

    @abstractmethod
    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        """Read the resource for the processes *pids*; return this tick's timeline values."""

    @abstractmethod
    def summary(self, exit: RunExit) -> SamplerSummary:
        """Called once after the tree has been reaped."""


class SamplingThread:
    """Drives the samplers every ``interval_s`` until :meth:`stop`; writes ``timeline.csv``."""

    def __init__(
        self,
        samplers: Sequence[Sampler],
        interval_s: float,
        timeline_path: Path | None,
        list_pids: Callable[[], list[int]],
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.samplers = list(samplers)
        self.interval_s = interval_s
        self.timeline_path = timeline_path
        self.list_pids = list_pids
        self.on_tick = on_tick
        self.errors: list[str] = []
        self.samples = 0
        self.busy_s = 0.0  # CPU time this thread spent sampling: the sampler's own cost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-driver-sampler", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        """Take one last sample, then stop and close the timeline."""
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join()

    def _run(self) -> None:
        columns = ["time_s"] + [c for s in self.samplers for c in s.columns]
        timeline = None
        if self.timeline_path is not None:
            timeline = open(self.timeline_path, "w", encoding="utf-8", buffering=1 << 16)
            timeline.write(",".join(columns) + "\n")
        try:
            for sampler in self.samplers:
                sampler.start()
            while True:
                stopping = self._stop.is_set()
                self._tick(columns, timeline)
                if stopping or self._stop.wait(self.interval_s):
                    if not stopping:
                        self._tick(columns, timeline)
                    break
        finally:
            if timeline is not None:
                timeline.close()

    def _tick(self, columns: list[str], timeline: Any) -> None:
        cpu0 = time.thread_time()
        row: dict[str, float] = {"time_s": round(time.monotonic() - self._t0, 4)}
        pids = self.list_pids()
        for sampler in self.samplers:
            try:
                row.update(sampler.sample(pids))
            except Exception as exc:  # a sampler must never kill the run: report it instead
                message = f"sampler {sampler.name!r}: {type(exc).__name__}: {exc}"
                if message not in self.errors:
                    self.errors.append(message)
        if self.on_tick is not None:
            self.on_tick()
        if timeline is not None:
            timeline.write(",".join(_cell(row.get(c)) for c in columns) + "\n")
        self.samples += 1
        self.busy_s += time.thread_time() - cpu0


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return repr(round(value, 3)) if isinstance(value, float) else str(value)


def task_pids() -> list[int]:
    """The task's processes: every descendant of this (subreaper) driver process.

    Orphans of the task are re-parented to the driver, so they are found here too.
    """
    return proctree.descendants(os.getpid())
