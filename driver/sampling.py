"""Samplers poll resources of the running task on background threads, off the log path.

Ticks keep a fixed rate: tick *k* is due ``k * interval_s`` after sampling started, however long
the samplers took (a tick that is a whole interval late is skipped, never queued). Each tick the
ticking thread lists the task's process tree once (from /proc, cheap), hands that list to every
sampler, and appends one row to the run's ``timeline.csv``. A sampler whose reads can block (a
GPU driver call) declares ``own_thread = True`` and runs on a thread of its own: it never delays
the other samplers' ticks; while it is still busy with an earlier tick, its cells of the new row
stay empty. When the run ends each sampler summarises: flat metrics for the result file and
details for the run record.
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Sequence

from driver import proctree
from driver.records import Record

DEFAULT_INTERVAL_S = 0.1
LANE_JOIN_TIMEOUT_S = 10.0  # how long the end of a run waits for a sampler stuck in a driver call


class SamplingSettings(Record):
    """What samplers are told about a run before it starts."""

    interval_s: float = DEFAULT_INTERVAL_S
    gpus: tuple[int, ...] = ()  # NVML indices of the GPUs handed to the task
    # The entries of the command's CUDA_VISIBLE_DEVICES: GPU (or MIG) UUIDs once checked against
    # NVML, the user's own entries when they could not be checked; () for a CPU run.
    gpu_devices: tuple[str, ...] = ()
    options: argparse.Namespace = argparse.Namespace()  # the command line

    def option(self, name: str, default: Any = None) -> Any:
        """The value of a command-line option (*default* when the command has no such option)."""
        return getattr(self.options, name, default)


class RunExit(Record):
    """Kernel accounting of the finished tree, from ``wait4`` on every process the driver reaped.

    ``spawn_floor_kib`` is the driver's own peak RSS when it started the command: a child's
    ``ru_maxrss`` never reads below it (fork/vfork accounting), so a value at or under it only
    says "no more than this" and the samplers' polling decides.
    """

    maxrss_kib: tuple[int, ...] = ()
    spawn_floor_kib: int = 0


class SamplerSummary(Record):
    """A sampler's findings: flat metrics (``{name: float}``), record details, and errors."""

    metrics: Mapping[str, float] = {}
    details: Mapping[str, Any] = {}
    errors: Sequence[str] = ()


class Sampler(ABC):
    """Polls one resource. ``columns`` names what :meth:`sample` adds to each timeline row.

    ``start``, ``sample`` and ``stop`` are called on the thread that drives the sampler (its own
    one when ``own_thread`` is True); ``summary`` on the driver's main thread after the run.
    """

    name: str = "sampler"
    columns: tuple[str, ...] = ()
    own_thread: bool = False  # True: reads may block; run them on a thread of their own

    def start(self) -> None:
        """Called once before the first sample."""

    @abstractmethod
    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        """Read the resource for the processes *pids*; return this tick's timeline values."""

    def stop(self) -> None:
        """Called once after the last sample, also when sampling failed: release what
        :meth:`start` took."""

    @abstractmethod
    def summary(self, exit: RunExit) -> SamplerSummary:
        """Called once after the tree has been reaped."""


def next_tick(tick: int, elapsed_s: float, interval_s: float) -> int:
    """The tick to take after *tick*, *elapsed_s* after sampling started.

    Ticks are due at ``k * interval_s``: the schedule never drifts by the time sampling takes. A
    tick that is late by less than an interval is taken at once; earlier ones are skipped.
    """
    return max(tick + 1, math.floor(elapsed_s / interval_s))


class _Errors:
    """Messages from samplers on any thread, each kept once, in order."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._lock = threading.Lock()

    def add(self, message: str) -> None:
        with self._lock:
            if message not in self.messages:
                self.messages.append(message)

    def guarded(self, sampler: Sampler, call: Callable[[], Any], default: Any = None) -> Any:
        """``call()``; a sampler's exception is reported instead of killing the run."""
        try:
            return call()
        except Exception as exc:
            self.add(f"sampler {sampler.name!r}: {type(exc).__name__}: {exc}")
            return default


class _Lane:
    """One sampler on a thread of its own. It takes one tick at a time: a tick that arrives
    while it is still busy is skipped for it (``skipped``), so that nothing queues up."""

    def __init__(self, sampler: Sampler, errors: _Errors) -> None:
        self.sampler = sampler
        self.errors = errors
        self.skipped = 0
        self.samples = 0
        self.busy_s = 0.0  # this thread's CPU time
        self._results: dict[int, Mapping[str, float]] = {}
        self._request: tuple[int, Sequence[int]] | None = None
        self._busy = False
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"bench-driver-sampler-{sampler.name}")

    def begin(self) -> None:
        self._thread.start()

    def offer(self, tick: int, pids: Sequence[int]) -> bool:
        """Hand *tick* to the sampler; False (skipped) while it is still busy."""
        with self._changed:
            if self._busy or self._request is not None or self._stopping:
                self.skipped += 1
                return False
            self._request = (tick, pids)
            self._changed.notify_all()
            return True

    def take(self, tick: int) -> Mapping[str, float] | None:
        """The values of *tick* once read (then forgotten); None while still being read."""
        with self._changed:
            return self._results.pop(tick, None)

    def end(self) -> bool:
        """Let the sampler finish the tick it has, stop it; False if it did not end in time."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread.ident is not None:
            self._thread.join(LANE_JOIN_TIMEOUT_S)
        return not self._thread.is_alive()

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            self.errors.guarded(self.sampler, self.sampler.start)
            while (request := self._next_request()) is not None:
                tick, pids = request
                values = self.errors.guarded(self.sampler, lambda: self.sampler.sample(pids), {})
                with self._changed:
                    self._results[tick] = values
                    self._busy = False
                    self.samples += 1
                    self._changed.notify_all()
        finally:
            self.errors.guarded(self.sampler, self.sampler.stop)
            self.busy_s = time.thread_time() - cpu0

    def _next_request(self) -> tuple[int, Sequence[int]] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._request is not None or self._stopping)
            request, self._request = self._request, None
            self._busy = request is not None
            return request


class _Timeline:
    """timeline.csv: one row per tick, in tick order, written once every lane has answered."""

    def __init__(self, path: Path | None, columns: list[str]) -> None:
        self.columns = columns
        self._file: IO[str] | None = None
        self.error: str | None = None  # why the timeline could not be written (a full disk)
        if path is not None:
            try:
                self._file = open(path, "w", encoding="utf-8", buffering=1 << 16)
            except OSError as exc:
                self._failed(exc)
        self._write(",".join(columns) + "\n")
        self._pending: list[tuple[int, dict[str, float], list[_Lane]]] = []

    def add(self, tick: int, row: dict[str, float], waiting: list[_Lane]) -> None:
        self._pending.append((tick, row, waiting))

    def flush(self, final: bool = False) -> None:
        """Write the rows that are complete (all of them when *final*; missing cells empty)."""
        while self._pending:
            tick, row, waiting = self._pending[0]
            for lane in list(waiting):
                values = lane.take(tick)
                if values is not None:
                    row.update(values)
                    waiting.remove(lane)
            if waiting and not final:
                return
            self._pending.pop(0)
            self._write(",".join(_cell(row.get(c)) for c in self.columns) + "\n")

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:  # the last buffered rows could not be written
                self._file = None
                self._failed(exc)

    def _write(self, line: str) -> None:
        if self._file is None:
            return
        try:
            self._file.write(line)
        except OSError as exc:  # stop writing; the run and the other samplers go on
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        self.error = self.error or f"writing timeline.csv failed: {exc.strerror or exc}"
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


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
        self.samples = 0  # ticks taken
        self.late_ticks = 0  # ticks skipped because the ticking thread itself fell behind
        self._errors = _Errors()
        self._inline = [s for s in self.samplers if not s.own_thread]
        self._lanes = [_Lane(s, self._errors) for s in self.samplers if s.own_thread]
        self._tick_cpu_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-driver-sampler", daemon=True)
        self._t0 = time.monotonic()

    @property
    def errors(self) -> list[str]:
        """What went wrong while sampling, each message once."""
        return self._errors.messages

    @property
    def timeline_error(self) -> str | None:
        """Why timeline.csv could not be written (a full disk), once sampling has stopped."""
        timeline = getattr(self, "_timeline", None)
        return timeline.error if timeline is not None else None

    @property
    def busy_s(self) -> float:
        """CPU time spent sampling, every sampling thread together: the samplers' own cost."""
        return self._tick_cpu_s + sum(lane.busy_s for lane in self._lanes)

    def lane_costs(self) -> dict[str, tuple[float, int]]:
        """``{sampler name: (CPU seconds, samples)}`` of the samplers on threads of their own."""
        return {lane.sampler.name: (lane.busy_s, lane.samples) for lane in self._lanes}

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
        timeline = self._timeline = _Timeline(self.timeline_path, columns)
        try:
            for lane in self._lanes:
                lane.begin()
            for sampler in self._inline:
                self._errors.guarded(sampler, sampler.start)
            self._loop(timeline)
        finally:
            self._finish(timeline)

    def _loop(self, timeline: _Timeline) -> None:
        tick = 0
        while True:
            stopping = self._stop.is_set()
            self._tick(tick, timeline)
            if stopping:
                return
            following = next_tick(tick, time.monotonic() - self._t0, self.interval_s)
            self.late_ticks += following - tick - 1
            tick = following
            if self._stop.wait(max(0.0, self._t0 + tick * self.interval_s - time.monotonic())):
                self._tick(tick, timeline)  # the last sample, when asked to stop
                return

    def _tick(self, tick: int, timeline: _Timeline) -> None:
        cpu0 = time.thread_time()
        row: dict[str, float] = {"time_s": round(time.monotonic() - self._t0, 4)}
        pids = self.list_pids()
        waiting = [lane for lane in self._lanes if lane.offer(tick, pids)]
        for sampler in self._inline:
            row.update(self._errors.guarded(sampler, lambda: sampler.sample(pids), {}))
        if self.on_tick is not None:
            self.on_tick()
        timeline.add(tick, row, waiting)
        timeline.flush()
        self.samples += 1
        self._tick_cpu_s += time.thread_time() - cpu0

    def _finish(self, timeline: _Timeline) -> None:
        try:
            for lane in self._lanes:
                if not lane.end():
                    self._errors.add(f"sampler {lane.sampler.name!r} did not finish within "
                                     f"{LANE_JOIN_TIMEOUT_S:g} s; its last cells are empty")
            for sampler in self._inline:
                self._errors.guarded(sampler, sampler.stop)
            timeline.flush(final=True)
        finally:
            timeline.close()
        for lane in self._lanes:
            if lane.skipped:
                self._errors.add(
                    f"sampler {lane.sampler.name!r} was still reading an earlier tick at "
                    f"{lane.skipped} of {self.samples} ticks; its cells are empty there")
        if self.late_ticks:
            self._errors.add(f"sampling fell behind: {self.late_ticks} tick(s) of "
                             f"{self.interval_s:g} s were skipped")


def _cell(value: float | None) -> str:
    if value is None:
        return ""
    return repr(round(value, 3)) if isinstance(value, float) else str(value)


def task_pids() -> list[int]:
    """The task's processes: every descendant of this (subreaper) driver process but the
    driver's own helpers (see :func:`driver.proctree.task_tree`).

    Orphans of the task are re-parented to the driver, so they are found here too.
    """
    return proctree.task_tree()
