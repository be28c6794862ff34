"""``datagen NAME run --backend local|ray|slurm``: every taskid stream is one driver run.

A stream's run is the task :data:`STREAM_TASK`, built here (the user's config needs no task for
it): its command is ``bench-driver datagen NAME run --epochs E --taskids T``, the in-process path
for one taskid, so a stream trains exactly as ``run`` without a backend does (the store is the
same file, the values the same bits). Its patterns scrape the epochs it trained and their mean
seconds. The runs go through the driver's backends as a live search's trials do
(:class:`driver.search_backend.BackendExecutor` over :class:`~driver.search_backend.TrialRuns`,
a trial per taskid): each has a run directory ``DIR/runs/STAMP/NNNN`` (NNNN the taskid) with
its record and ``output.log``, at most ``--jobs`` in flight. A stream that fails is reported
with its run directory and the others go on; a stop signal cancels the streams in flight (each
keeps the epochs it finished: every epoch is one transaction of its store).
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from driver.errors import BenchDriverError, ConfigError, ExitCode

if TYPE_CHECKING:
    from driver.config import TaskConfig
    from driver.plugins import Plugins
    from driver.search import TrialResult
    from driver.search_backend import BackendExecutor, TrialRuns
    from plugins.datagen.plan import Remaining
    from plugins.datagen.profile import Profile

STREAM_TASK = "datagen_stream"
EPOCHS_METRIC, RATE_METRIC = "epochs_trained", "train_s_per_epoch"
#: What ``datagen NAME run`` prints once its streams are trained (scraped by the stream's run).
TRAINED_LINE = "datagen {name}: {epochs} epoch(s) trained"


class StreamsFailed(BenchDriverError):
    """A stream's run failed (the other streams kept going)."""

    exit_code = ExitCode.COMMAND_FAILED


class StreamsInterrupted(BenchDriverError):
    """A stop signal reached ``datagen run``: the streams in flight were cancelled."""

    def __init__(self, message: str, signal_name: str) -> None:
        super().__init__(message)
        self.exit_code = ExitCode[signal_name]


def stream_task(profile: Profile, config_path: Path) -> dict[str, Any]:
    """The task table of one stream's run (``--set taskid=T``)."""
    return {
        "description": f"one stream of datagen profile {profile.name!r}: `bench-driver datagen "
                       f"NAME run --taskids T` as a run (docs/datagen.md)",
        "command_to_execute": "{python} -m driver datagen {profile} run --config {config} "
                              "--epochs {epochs} --taskids {taskid}",
        "num_gpus": 1 if profile.device.startswith("cuda") else 0,  # Ray and Slurm place it
        "params": {"profile": profile.name, "config": str(config_path.absolute()),
                   "epochs": 1, "taskid": -1},
        "metric": [
            {"name": EPOCHS_METRIC, "compute_method": "last",
             "pattern": r"^datagen .*: (\d+) epoch\(s\) trained$"},
            {"name": RATE_METRIC, "compute_method": "average", "optional": True, "unit": "s",
             "pattern": r"^datagen: taskid=\d+ .* train_time_s=(\S+) "},
        ],
    }


def check_backend_args(args: argparse.Namespace) -> bool:
    """Whether the streams run on a backend (``--backend`` or ``--jobs``); refuse, before
    anything runs, the options that do not go with a backend (or without)."""
    if args.backend is None and args.jobs is None:
        if args.backend_args:
            raise ConfigError("--backend-args are the backend's options: give --backend NAME "
                              "(or --jobs N for the local backend) too")
        return False
    if args.workers is not None:
        raise ConfigError(f"--workers {args.workers} trains taskids in this process's pool; "
                          f"with a backend the streams in flight are --jobs N: drop --workers")
    if args.emit_slurm is not None:
        raise ConfigError("--emit-slurm writes job scripts instead of running: drop --backend "
                          "and --jobs (or use --backend slurm to submit the streams now)")
    return True


@dataclass(frozen=True)
class Streams:
    """The streams of one ``datagen run`` on a made and checked backend, *jobs* in flight."""

    profile: Profile
    taskids: Sequence[int]
    name: str  # the backend's
    runs: TrialRuns
    backend: Any  # a Backend behind the plugin guard (driver.guard.Guarded)
    jobs: int
    devices: tuple[str, ...] = ()  # the GPUs the streams lease (a backend that places none)


def open_streams(profile: Profile, directory: Path, config: TaskConfig,
                 left: Sequence[Remaining], args: argparse.Namespace,
                 plugins: Plugins) -> Streams:
    """Check the backend and its options, make it and the stream task for the taskids of
    *left*: nothing has run yet (ConfigError, exit 3, and no run directory left, when something
    is wrong)."""
    from driver.backends import DEFAULT_BACKEND, check_jobs, make_backend
    from driver.benchmark import new_run_dir
    from driver.search_backend import backend_options

    name, taskids = args.backend or DEFAULT_BACKEND, [r.taskid for r in left]
    jobs = check_jobs(args.jobs, name) or len(taskids)
    defaults = slurm_defaults(profile, left) if name == "slurm" else {}
    options = backend_options(args.backend_args, plugins, defaults)
    options.runs_dir = new_run_dir(directory, "runs")
    try:
        runs = stream_runs(profile, config, args.epochs, plugins, options)
        backend = make_backend(plugins, name, options, jobs)
        return Streams(profile, taskids, name, runs, backend, jobs,
                       _gpu_pool(profile, runs, backend, jobs))
    except ConfigError:
        options.runs_dir.rmdir()  # nothing ran: leave no empty run directory behind
        raise


def run_streams(streams: Streams) -> list[str]:
    """Run every stream, then close the backend; what failed, one line per failed stream
    (StreamsInterrupted on a stop signal: the streams in flight are cancelled)."""
    from driver.runner import StopRequests
    from driver.search_backend import BackendExecutor, SearchInterrupted

    print(f"datagen {streams.profile.name}: {len(streams.taskids)} stream(s) on the "
          f"{streams.name} backend, {streams.jobs} at once, runs in {streams.runs.runs_dir}",
          flush=True)
    with StopRequests().installed() as stop:
        try:
            with BackendExecutor(streams.backend, streams.runs, stop=stop,
                                 devices=streams.devices) as executor:
                return _stream_all(streams, executor)
        except SearchInterrupted as exc:
            raise StreamsInterrupted(
                f"datagen {streams.profile.name}: {stop.received}: the streams in flight were "
                f"cancelled; each keeps the epochs it finished (run again to continue; runs in "
                f"{streams.runs.runs_dir})", str(stop.received)) from exc


def _gpu_pool(profile: Profile, runs: TrialRuns, backend: Any, jobs: int) -> tuple[str, ...]:
    """The GPUs the streams lease on a backend that places none (local): this process's
    CUDA_VISIBLE_DEVICES pool; ConfigError when one per stream in flight does not go round."""
    per_stream = runs.task_for(_trial(profile.taskids.start)).num_gpus
    if backend.places_gpus or not per_stream:
        return ()
    from driver.gpus.assign import usable_pool

    pool = usable_pool(os.environ).cuda_visible_devices
    devices = tuple(d for d in pool.split(",") if d)
    if per_stream * jobs > len(devices):
        raise ConfigError(f"datagen {profile.name}: device = {profile.device!r}: {jobs} "
                          f"stream(s) in flight need {per_stream * jobs} GPU(s), the pool "
                          f"(CUDA_VISIBLE_DEVICES) has {len(devices)} ({pool or 'none'}): "
                          f"lower --jobs")
    return devices


def stream_runs(profile: Profile, config: TaskConfig, epochs: int, plugins: Plugins,
                options: argparse.Namespace) -> TrialRuns:
    """How taskids become runs of :data:`STREAM_TASK` in ``options.runs_dir`` (a trial's
    number and configuration are its taskid); the task is checked here."""
    from driver.search_backend import TrialRuns

    tables = {STREAM_TASK: stream_task(profile, config.path)}
    runs = TrialRuns(config._replace(defaults={}, tasks=tables), STREAM_TASK,
                     plugins.registry("compute_methods"), options.runs_dir, plugins.plugin_set,
                     options, value_metric=EPOCHS_METRIC, fixed={"epochs": str(epochs)},
                     config_param="taskid")
    runs.task_for(_trial(profile.taskids.start))
    return runs


def slurm_defaults(profile: Profile, left: Sequence[Remaining]) -> dict[str, Any]:
    """The profile's Slurm settings as the defaults of ``--backend slurm``'s options: every
    stream is one job, all with the time limit of the longest (its estimate x TIME_MARGIN, at
    least MIN_JOB_S, as ``--emit-slurm``), the profile's CPUs and partition."""
    from plugins.datagen.plan import MIN_JOB_S, TIME_MARGIN

    longest_s = max((r.seconds for r in left), default=0.0)
    defaults: dict[str, Any] = {"slurm_time_min": math.ceil(max(MIN_JOB_S, TIME_MARGIN *
                                                                 longest_s) / 60),
                                "slurm_cpus_per_run": profile.cpus_per_job}
    if profile.partition:
        defaults["slurm_partition"] = profile.partition
    return defaults


def _trial(taskid: int) -> Any:
    from driver.search import Trial

    return Trial(taskid, taskid)


def _stream_all(streams: Streams, executor: BackendExecutor) -> list[str]:
    """Keep ``streams.jobs`` streams in flight until every one ended; what each failure was."""
    pending, failures = list(streams.taskids), []
    while pending or executor.in_flight:
        while pending and executor.in_flight < streams.jobs:
            executor.submit(_trial(pending.pop(0)))
        _, result = executor.next_result()
        line, failure = _ended(streams.profile, result)
        print(line, flush=True)
        if failure is not None:
            failures.append(failure)
    return failures


def _ended(profile: Profile, result: TrialResult) -> tuple[str, str | None]:
    """The console line of a stream that ended, and what failed (None when it did not)."""
    info, taskid = result.info, result.trial.number
    run_dir = Path(info["run_dir"])
    if "failed" not in info:
        rate = info.get(RATE_METRIC)
        speed = f" at {rate:.3g} s/epoch" if rate is not None else ""
        return (f"datagen {profile.name}: taskid {taskid}: {int(result.value)} epoch(s) "
                f"trained{speed} ({run_dir})"), None
    log = run_dir / "output.log"
    why = f"{info['failed']}{_last_line(log)} (log: {log})"
    return f"datagen {profile.name}: taskid {taskid} FAILED: {why}", f"taskid {taskid}: {why}"


def _last_line(path: Path) -> str:
    """``: LINE``, the last line of *path* (the stream's own error), or nothing."""
    from driver.backends import log_tail

    last = log_tail(path, 1)
    return f": {last[0]}" if last else ""
