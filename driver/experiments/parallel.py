"""Sets of repeated runs through a backend, ``--jobs N`` at a time (docs/backends.md).

The runs of every set (an experiment's variants, or one ``--repetitions`` set) become
:class:`~driver.backends.RunJob` objects, in the order a serial run would start them. At most
``--jobs`` run at once; on one machine each also leases the GPUs it needs from the driver's pool,
exclusively (a run that needs k GPUs waits until k are free; the pool accepts GPU indices and
UUIDs, as ``CUDA_VISIBLE_DEVICES`` does). Each run has the run directory, seed and repetition a
serial run would give it, so its record is the one a serial run writes (except timings, memory,
pids, hosts and GPU ids). A run whose worker ended without finishing it (killed, its node lost) is
recorded ``interrupted`` with the reason: the set is incomplete, and the run reruns on resume.
A stop signal (Ctrl-C) is passed on to every live run; no new run starts.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from driver import results
from driver.backends import Finished, Placement, RunJob
from driver.benchmark import RunOptions, requested_gpus
from driver.config import TaskSpec
from driver.errors import ConfigError, StorageError
from driver.experiments.progress import Progress, status_text
from driver.experiments.repetitions import (RepeatPlan, finish_set, finished_record,
                                            fresh_run_dir)
from driver.experiments.summary import SetRun, SetSummary
from driver.output import ECHO_OFF
from driver.plugins import Plugins
from driver.results import RunRecord
from driver.runner import StopRequests, utc_now

POLL_S = 0.2  # how often the loop looks at stop signals while it waits for a run to end


@dataclass(frozen=True)
class SetToRun:
    """One set: its task, directory, and the experiment and variant it belongs to (if any)."""

    task: TaskSpec
    set_dir: Path
    header: SetSummary | None = None


@dataclass(frozen=True)
class _Slot:
    kind: str
    index: int
    seed: int
    run_dir: Path
    kept: RunRecord | None  # a finished run from before, kept


def run_sets(sets: Sequence[SetToRun], options: RunOptions, plugins: Plugins, plan: RepeatPlan,
             backend: Any, jobs: int, keep_fds: Sequence[int] = (),
             compact: bool = False) -> list[SetSummary]:
    """Run every unfinished run of *sets* on *backend*, *jobs* at a time; write and return each
    set's summary (in the order of *sets*). *backend* is a guarded
    :class:`~driver.backends.Backend` (*jobs* 0: every run at once); *keep_fds* the experiment
    lock; *compact* the console's style (:class:`~driver.experiments.progress.Progress`)."""
    slots = {s.set_dir: _slots(s, options, plan) for s in sets}
    work = [_job(s, slot, options, plugins) for s in sets for slot in slots[s.set_dir]
            if slot.kept is None]
    pool = _gpu_pool(work, options) if not backend.places_gpus else None
    for slot in (x for s in slots.values() for x in s if x.kept is None):
        fresh_run_dir(slot.run_dir)
    if work and options.on_start is not None:
        options.on_start()  # the reporters' begin(), once, before the first run
    records = _schedule(work, backend, jobs or max(1, len(work)), pool, tuple(keep_fds),
                        compact)
    return [_summary(s, slots[s.set_dir], records, plan) for s in sets]


def _slots(s: SetToRun, options: RunOptions, plan: RepeatPlan) -> list[_Slot]:
    found = []
    for kind, index, dirname in plan.slots():
        seed = plan.base_seed + index
        kept = finished_record(s.set_dir / dirname, s.task, options, seed, index,
                               plan.keep_failed)
        found.append(_Slot(kind, index, seed, s.set_dir / dirname, kept))
    return found


def _job(s: SetToRun, slot: _Slot, options: RunOptions, plugins: Plugins) -> RunJob:
    label = s.header.label if s.header is not None and s.header.experiment else s.task.name
    once = options._replace(run_dir=slot.run_dir.absolute(), seed=slot.seed,
                            repetition=slot.index, echo=ECHO_OFF, on_start=None, environ={},
                            report=options.report._replace(in_set=True, stream=None))
    return RunJob(str(slot.run_dir), f"{label} {slot.kind} {slot.index} (seed {slot.seed})",
                  s.task, once, plugins.plugin_set, os.getcwd(),
                  gpus=requested_gpus(s.task, options))


def _summary(s: SetToRun, slots: Sequence[_Slot], records: dict[str, RunRecord],
             plan: RepeatPlan) -> SetSummary:
    """The set's summary: every slot that was kept or ran, in slot order."""
    runs = []
    for slot in slots:
        record = slot.kept or records.get(str(slot.run_dir))
        if record is not None:
            runs.append((SetRun.of(slot.kind, slot.index, slot.seed, record,
                                   slot.kept is not None), record))
    return finish_set(s.task, s.set_dir, plan, runs, s.header)


class _GpuPool:
    """The devices runs lease, each held by one run at a time."""

    def __init__(self, devices: Sequence[str]) -> None:
        self.free = list(devices)

    def take(self, count: int) -> tuple[str, ...] | None:
        """*count* free devices (pool order), or None until enough are given back."""
        if count > len(self.free):
            return None
        taken, self.free = self.free[:count], self.free[count:]
        return tuple(taken)

    def give_back(self, devices: Sequence[str]) -> None:
        self.free.extend(devices)


def _gpu_pool(work: Sequence[RunJob], options: RunOptions) -> _GpuPool:
    """The driver's pool (NVML only when a run needs GPUs); ConfigError when a run needs more
    than it has, or when ``--gpus`` would give every concurrent run the same GPUs."""
    needed = max((job.gpus for job in work), default=0)
    if needed == 0:
        return _GpuPool(())
    if options.gpus is not None:
        raise ConfigError(f"--gpus {','.join(map(str, options.gpus))} with a backend: every run "
                          f"would get the same GPUs; choose the pool to share out with "
                          f"CUDA_VISIBLE_DEVICES={','.join(map(str, options.gpus))} instead")
    from driver.gpus.assign import usable_pool

    pool = usable_pool(options.variables)
    if needed > pool.count:
        raise ConfigError(f"a run needs {needed} GPU(s) but the pool has {pool.count} "
                          f"({pool.cuda_visible_devices or 'none'}); lower num_gpus "
                          f"(--num-gpus), or name the GPUs in CUDA_VISIBLE_DEVICES")
    return _GpuPool(pool.devices)


def _schedule(work: Sequence[RunJob], backend: Any, jobs: int, pool: _GpuPool | None,
              keep_fds: tuple[int, ...], compact: bool = False) -> dict[str, RunRecord]:
    """Run *work* on *backend*, *jobs* at a time; the record of every run that started, by
    key."""
    pending = deque(work)
    live: dict[str, tuple[str, ...]] = {}  # key -> its leased devices
    done: dict[str, RunRecord] = {}
    progress = Progress(len(work), jobs, compact=compact)
    try:
        with StopRequests().installed() as stop:
            while pending or live:
                _pass_on_stop(stop, backend, pending)
                while pending and len(live) < jobs:
                    devices = pool.take(pending[0].gpus) if pool is not None else ()
                    if devices is None:
                        break  # wait until a run gives its GPUs back
                    job = pending.popleft()
                    backend.submit(job, Placement(devices, keep_fds))
                    live[job.key] = devices
                    progress.started(job.key, job.label, _gpus_text(devices))
                finished = backend.next_finished(POLL_S)
                if finished is not None:
                    devices = live.pop(finished.job.key)
                    if pool is not None:
                        pool.give_back(devices)
                    done[finished.job.key] = record = _record_of(finished)
                    progress.ended(finished.job.key, status_text(record),
                                   record.status == results.OK)
    finally:
        progress.close()
    return done


def _pass_on_stop(stop: StopRequests, backend: Any, pending: deque[RunJob]) -> None:
    """The user asked to stop: no new run starts; the live ones are told."""
    sig = stop.take()
    if sig is not None:
        pending.clear()
        backend.cancel(signal.Signals(sig).name)


def _record_of(finished: Finished) -> RunRecord:
    """The finished run's record; for a worker that gave none, one that says why."""
    if finished.failure is None and finished.record is not None:
        return finished.record
    job = finished.job
    base = finished.record or RunRecord(
        task=job.task.name, command="", status=results.RUNNING, exit_code=None,
        started_at=utc_now(), ended_at="", duration_s=0.0, run_dir=str(job.options.run_dir))
    record = base._replace(status=results.INTERRUPTED, ended_at=utc_now(), errors=base.errors + (
        f"{finished.failure}: the run is incomplete and reruns on resume",))
    try:
        record.save(Path(str(job.options.run_dir)) / "record.json")
    except StorageError as exc:
        record = record.with_storage_error(exc)
        print(f"bench-driver: error: {exc}", file=sys.stderr)
    return record


def _gpus_text(devices: Sequence[str]) -> str:
    return f"GPU {','.join(devices)}" if devices else ""
