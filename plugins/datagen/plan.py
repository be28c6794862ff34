"""What is left to train, in measured seconds, and Slurm job scripts packed by that estimate.

Seconds per epoch are measured: the mean of ``train_time_s + eval_time_s`` over every epoch
stored for the data set (in any stream); before any epoch is stored, the profile's
``estimate_s_per_epoch``. A taskid is the unit of work (one store file, one writer), so jobs are
packed from whole taskids, greedily, largest first, into jobs of at most ``job_hours``; a taskid
larger than that gets a job of its own. A job's time limit is its estimate times
:data:`TIME_MARGIN` (and at least :data:`MIN_JOB_S`), since the estimate comes from one machine.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from plugins.datagen.profile import Profile
from plugins.datagen.sampling import Sample
from plugins.datagen.store import StreamStore, store_path

TIME_MARGIN = 1.5
MIN_JOB_S = 600.0


@dataclass(frozen=True)
class Remaining:
    """The epochs left for one taskid to reach the target, and their estimated seconds."""

    taskid: int
    epochs: int
    seconds: float


Rates = dict[str, tuple[float, int]]  # data set -> (seconds per epoch, epochs measured)


def seconds_per_epoch(profile: Profile, directory: Path,
                      taskids: Iterable[int] | None = None) -> Rates:
    """Per data set: ``(seconds per epoch, epochs measured)`` in the stores of *taskids* (every
    taskid of the profile by default); 0 measured = the estimate. A ``--taskids T`` run (each
    stream on a backend is one) reads its own stores only, never every other stream's."""
    totals = {d: [0.0, 0] for d in profile.datasets}
    for taskid in profile.taskids if taskids is None else taskids:
        path = store_path(directory, taskid)
        if not path.is_file():
            continue
        store = StreamStore(path)
        for dataset, seconds, count in store.db.execute(
                "SELECT dataset, SUM(train_time_s + eval_time_s), COUNT(*) FROM epochs "
                "GROUP BY dataset"):
            if dataset in totals:
                totals[dataset][0] += seconds
                totals[dataset][1] += count
        store.db.close()
    return {d: (s / n, int(n)) if n else (profile.estimate_s_per_epoch, 0)
            for d, (s, n) in totals.items()}


def remaining(profile: Profile, directory: Path, samples: Sequence[Sample],
              target_epoch: int, rate: Rates | None = None) -> list[Remaining]:
    """Per taskid of *samples*: the epochs to reach *target_epoch* and their estimated seconds
    (at *rate*, by default :func:`seconds_per_epoch`: it opens every store, so pass it on)."""
    rate = seconds_per_epoch(profile, directory) if rate is None else rate
    left: dict[int, list[float]] = {}
    stores: dict[int, StreamStore | None] = {}
    for sample in samples:
        if sample.taskid not in stores:
            path = store_path(directory, sample.taskid)
            stores[sample.taskid] = StreamStore(path) if path.is_file() else None
        store = stores[sample.taskid]
        entry = left.setdefault(sample.taskid, [0, 0.0])
        for dataset in profile.datasets:
            done = store.epochs_done(sample.taskid, sample.model_idx, dataset) if store else 0
            todo = max(0, target_epoch - done)
            entry[0] += todo
            entry[1] += todo * rate[dataset][0]
    for store in stores.values():
        if store is not None:
            store.db.close()
    return [Remaining(t, int(e), s) for t, (e, s) in sorted(left.items())]


def describe(profile: Profile, rate: Rates, left: Sequence[Remaining], target_epoch: int) -> str:
    """One line: what is left to reach *target_epoch*, and the *rate* it assumes."""
    rates = ", ".join(f"{d} {s:.3g} s/epoch ({f'measured over {n} epochs' if n else 'estimate'})"
                      for d, (s, n) in rate.items())
    epochs = sum(r.epochs for r in left)
    seconds = sum(r.seconds for r in left)
    return (f"datagen {profile.name}: {epochs} epochs left to reach epoch {target_epoch} in "
            f"{len(left)} taskid(s), about {seconds / 3600:.3g} CPU-hours ({seconds:.0f} s) at "
            f"{rates}")


def pack_jobs(left: Sequence[Remaining], job_s: float) -> list[list[Remaining]]:
    """Whole taskids into jobs of at most *job_s* estimated seconds (first fit, largest first)."""
    jobs: list[list[Remaining]] = []
    for item in sorted((r for r in left if r.epochs), key=lambda r: (-r.seconds, r.taskid)):
        for job in jobs:
            if sum(r.seconds for r in job) + item.seconds <= job_s:
                job.append(item)
                break
        else:
            jobs.append([item])
    return [sorted(job, key=lambda r: r.taskid) for job in jobs]


def slurm_script(profile: Profile, job: Sequence[Remaining], number: int, target_epoch: int,
                 config_path: Path, log_dir: Path) -> str:
    """The ``sbatch`` script of one job: its taskids, trained to *target_epoch*."""
    seconds = max(MIN_JOB_S, TIME_MARGIN * sum(r.seconds for r in job))
    taskids = ",".join(str(r.taskid) for r in job)
    command = ["python", "-m", "driver", "datagen", profile.name, "run", "--epochs",
               str(target_epoch), "--taskids", taskids, "--config", str(config_path.resolve())]
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name=datagen-{profile.name}-{number}",
             f"#SBATCH --time={_hms(seconds)}",
             f"#SBATCH --cpus-per-task={profile.cpus_per_job}",
             f"#SBATCH --mem={profile.memory_mib}M",
             f"#SBATCH --output={log_dir.resolve() / f'job-{number}.%j.log'}"]
    if profile.partition:
        lines.append(f"#SBATCH --partition={profile.partition}")
    lines += [f"# taskids {taskids}: {sum(r.epochs for r in job)} epochs, estimated "
              f"{sum(r.seconds for r in job):.0f} s",
              f"cd {shlex.quote(str(config_path.resolve().parent))}",
              "exec " + shlex.join(command), ""]
    return "\n".join(lines)


def _hms(seconds: float) -> str:
    whole = int(seconds + 0.999)
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"
