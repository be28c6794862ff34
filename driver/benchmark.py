"""One benchmark run, start to finish: the pipeline config -> run -> scrape -> reduce -> report.

:func:`run_benchmark` takes a validated TaskSpec and the command-line options, hands GPUs to the
command, makes the run directory, runs the command with the samplers beside it, reduces the
scraped values, writes the run record, and gives the record to every reporter plugin. Whatever
fails on the way (a plugin, a full disk), the record is finalised with the reason and every other
result is still written; :func:`driver.results.exit_code_for` turns the record into the documented exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from driver import results
from driver.config import TaskSpec
from driver.errors import BenchDriverError, ConfigError, PluginError, StorageError
from driver.guard import Guarded, instance_of
from driver.noise import RunWatch
from driver.plugins import PLUGIN_SET_ENV, Plugins
from driver.records import Record
from driver.reduce import MetricResult, ReduceContext, reduce_metrics, workers_for
from driver.report import ReportSettings, publish
from driver.results import RunRecord
from driver.output import ECHO_PLAIN
from driver.runner import (DEFAULT_KILL_GRACE_S, RunOutcome, RunRequest, StopRequests,
                           run_command, utc_now)
from driver.sampling import DEFAULT_INTERVAL_S, Sampler, SamplerSummary, SamplingSettings
from driver.scrape import Scraper

DEFAULT_RUNS_DIR = Path("bench-runs")


class RunOptions(Record):
    """Choices from the command line that apply to one run."""

    num_gpus: int | None = None  # None: the task's num_gpus
    gpus: tuple[int, ...] | None = None  # explicit --gpus
    sample_interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float | None = None  # None: the task's timeout
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    echo: str = ECHO_PLAIN
    runs_dir: Path = DEFAULT_RUNS_DIR
    run_dir: Path | None = None  # fixed run directory (experiments); default: a new one
    seed: int = 0
    repetition: int = 0
    strict_system: bool = False  # refuse a noisy machine (driver.noise) instead of warning
    report: ReportSettings = ReportSettings()
    environ: Mapping[str, str] | None = None  # the variables the run reads; None: os.environ
    on_start: Callable[[], None] | None = None  # called once all is checked, before the command

    @property
    def variables(self) -> Mapping[str, str]:
        """The environment variables the run reads (GPUs, workers, noise checks)."""
        return os.environ if self.environ is None else self.environ

    @property
    def cli(self) -> argparse.Namespace:
        """The parsed command line (plugins read their own options here)."""
        return self.report.options


class GpuPlan(Record):
    """The GPUs handed to the command and the environment that says so."""

    indices: tuple[int, ...]  # NVML indices (empty when unchecked: --no-gpu-sampling, no NVML)
    num_gpus: int  # how many GPUs the command gets (the indices may be unchecked)
    env: Mapping[str, str]
    devices: tuple[str, ...] = ()  # the command's CUDA_VISIBLE_DEVICES entries (UUIDs once checked)


def requested_gpus(task: TaskSpec, options: RunOptions) -> int:
    """How many GPUs the run asks for: ``--gpus``, else ``--num-gpus``, else the task's."""
    if options.gpus is not None:
        return len(options.gpus)
    return task.num_gpus if options.num_gpus is None else options.num_gpus


def plan_gpus(task: TaskSpec, options: RunOptions) -> GpuPlan:
    """Pick the command's GPUs; with none, hide every GPU (the task runs on CPU)."""
    wanted = requested_gpus(task, options)
    if wanted == 0:
        return GpuPlan((), 0, {"CUDA_VISIBLE_DEVICES": ""})
    from driver.gpus import assign as gpus

    assignment = gpus.assign_gpus(wanted, options.gpus, options.variables)
    return GpuPlan(assignment.indices, assignment.count, gpus.child_environment(assignment),
                   assignment.devices)


def new_run_dir(runs_dir: Path, task_name: str) -> Path:
    """``RUNS_DIR/TASK/YYYYmmdd-HHMMSS-PID[-N]``: new for every run, never shared."""
    base = runs_dir / task_name / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for n in range(1000):
        candidate = base if n == 0 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir(parents=True)
            return candidate.absolute()
        except FileExistsError:
            continue
        except OSError as exc:
            raise StorageError(f"{candidate}: cannot make the run directory: "
                               f"{exc.strerror or exc}") from exc
    raise ConfigError(f"{runs_dir}: cannot make a new run directory for {task_name!r}")


def run_benchmark(task: TaskSpec, options: RunOptions, plugins: Plugins) -> RunRecord:
    """Run *task* once and report it. Bad input raises before the command starts; after that,
    every failure is recorded and the record is always finalised.

    The stop signals are handled until the record and the flat result are written: a late
    signal never interrupts a write (the run stops at once if one came before it started)."""
    with StopRequests().installed() as stop:
        return _run_benchmark(task, options, plugins, stop)


def _run_benchmark(task: TaskSpec, options: RunOptions, plugins: Plugins,
                   stop: StopRequests) -> RunRecord:
    gpu_plan = plan_gpus(task, options)
    machine = RunWatch(gpu_plan.indices, options.strict_system, options.variables)
    settings = SamplingSettings(options.sample_interval_s, gpu_plan.indices, gpu_plan.devices,
                                options.cli)
    samplers, refused = _samplers(plugins, settings)
    run_dir = (options.run_dir or new_run_dir(options.runs_dir, task.name)).absolute()
    builtins: dict[str, str | int] = {
        "python": sys.executable, "num_gpus": gpu_plan.num_gpus,
        "seed": options.seed, "repetition": options.repetition, "run_dir": str(run_dir)}
    command = task.render_command(builtins)
    task_env = {**task.env, **gpu_plan.env}
    base = RunRecord(task=task.name, command=command, status=results.RUNNING, exit_code=None,
                     started_at=utc_now(), ended_at="", duration_s=0.0,
                     run_dir=str(run_dir), params={**task.params, **builtins},
                     num_gpus=gpu_plan.num_gpus, gpus=gpu_plan.indices, task_env=task_env,
                     plugin_errors=tuple(refused))
    if options.on_start is not None:
        options.on_start()
    base.save(run_dir / "record.json")  # a run that cannot record itself does not start
    request = RunRequest(
        command=command, cwd=task.cwd, log_path=run_dir / "output.log",
        env={**task_env, PLUGIN_SET_ENV: plugins.plugin_set.to_env()},
        timeout_s=options.timeout_s if options.timeout_s is not None else task.timeout_s,
        kill_grace_s=options.kill_grace_s, echo=options.echo,
        timeline_path=run_dir / "timeline.csv", sample_interval_s=options.sample_interval_s,
    )
    scraper = Scraper(task.metrics)
    environment = _InBackground(results.environment, task.cwd)  # git, host: while the task runs
    try:
        outcome = run_command(request, scraper, samplers, stop=stop)
    except BaseException as exc:  # a driver bug or a resource error: the tree is already ended
        _save(base._replace(status=results.FAILED, ended_at=utc_now(), errors=(
            f"bench-driver failed during the run: {type(exc).__name__}: {exc}",)), run_dir)
        raise
    metrics = reduce_metrics(task.metrics, scraper.close(), plugins,
                             ReduceContext(workers_for(task, options.variables)))
    record = _save(_finish(base, outcome, metrics, samplers, request,
                           machine.finish(environment.result())), run_dir)
    failures = publish(plugins, "report", record, options.report)
    late = stop.received if outcome.interrupted_by is None else None
    if failures or late:
        record = _save(_late_signal(_with_errors(record, failures), late), run_dir)
    return record


def _late_signal(record: RunRecord, late: str | None) -> RunRecord:
    """A stop signal that came after the command ended: the results are complete, but the
    exit code still says the user asked to stop (and a set stops after this run)."""
    if late is None:
        return record
    return record._replace(signal=late, errors=record.errors + (
        f"{late} arrived after the command had ended, while the results were written: they "
        f"are complete",))


def _save(record: RunRecord, run_dir: Path) -> RunRecord:
    """Write record.json; a failure to write it is noted in the record (and the exit code)."""
    try:
        record.save(run_dir / "record.json")
    except StorageError as exc:
        record = record.with_storage_error(exc)
        print(f"bench-driver: error: {exc}", file=sys.stderr)
    return record


def _with_errors(record: RunRecord, failures: Sequence[BenchDriverError]) -> RunRecord:
    plugin = tuple(str(e) for e in failures if isinstance(e, PluginError))
    storage = tuple(str(e) for e in failures if not isinstance(e, PluginError))
    return record._replace(plugin_errors=record.plugin_errors + plugin,
                   storage_errors=record.storage_errors + storage)


class _GuardedSampler(Sampler):
    """A sampler plugin behind the guard: its failures are kept (plugin errors of the run) and
    never reach the sampling thread, which goes on with the other samplers."""

    def __init__(self, sampler: Guarded) -> None:
        self.sampler = sampler
        self.name = str(sampler.name)
        self.columns = tuple(sampler.columns)
        self.own_thread = bool(getattr(sampler.target, "own_thread", False))
        self.failures: list[str] = []

    def start(self) -> None:
        self._try(lambda: self.sampler.start(), None)

    def stop(self) -> None:
        if self.sampler.has("stop"):
            self._try(lambda: self.sampler.stop(), None)

    def sample(self, pids: Sequence[int]) -> Mapping[str, float]:
        return self._try(lambda: self.sampler.sample(pids, returns=instance_of(Mapping)), {})

    def summary(self, exit: Any) -> SamplerSummary:
        return self._try(lambda: self.sampler.summary(exit, returns=instance_of(SamplerSummary)),
                         SamplerSummary())

    def _try(self, action: Any, fallback: Any) -> Any:
        try:
            return action()
        except PluginError as exc:
            if str(exc) not in self.failures:
                self.failures.append(str(exc))
            return fallback


def _samplers(plugins: Plugins, settings: SamplingSettings) -> tuple[list[_GuardedSampler],
                                                                      list[str]]:
    """The samplers that apply to this run, and the plugin errors of the factories that failed
    (a factory's ConfigError refuses the run: it is raised)."""
    found, failed = [], []
    for _, factory in plugins.items("samplers"):
        try:
            sampler = factory.create(settings, returns=instance_of(Sampler, allow_none=True))
        except PluginError as exc:
            failed.append(str(exc))
            continue
        if sampler.target is not None:
            found.append(_GuardedSampler(sampler))
    return found, failed


class _InBackground:
    """``fn(*args)`` on a thread of its own, started now; :meth:`result` waits for it."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value: Any = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True,
                                        name="bench-driver-background")
        self._thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        self._value = fn(*args)

    def result(self) -> Any:
        self._thread.join()
        return self._value


def _finish(
    base: RunRecord,
    outcome: RunOutcome,
    metrics: Sequence[MetricResult],
    samplers: Sequence[_GuardedSampler],
    request: RunRequest,
    environment: Mapping[str, Any],
) -> RunRecord:
    summaries = [(s.name, s.summary(outcome.exit)) for s in samplers]
    errors = list(outcome.sampler_errors) + list(outcome.notes)
    for _, summary in summaries:
        errors.extend(summary.errors)
    status, why = _status(outcome, request)
    errors.extend(why)
    missing = [m.name for m in metrics if m.missing and not m.optional]
    if status == results.OK and missing:
        status = results.MISSING_METRICS
    unmatched = [m.name for m in metrics if m.missing and not m.optional and not m.error]
    if unmatched:
        errors.append(f"required metric(s) never matched: {', '.join(unmatched)}")
    errors.extend(f"metric {m.name!r}: {m.error}" for m in metrics if m.error)
    plugin_errors = list(base.plugin_errors) + [f for s in samplers for f in s.failures]
    plugin_errors += [m.error for m in metrics if m.plugin_failed and m.error]
    memory: dict[str, Any] = {name: dict(s.details) for name, s in summaries}
    memory["sampler_cpu_s"] = round(outcome.sampler_cost_s, 6)
    resource: dict[str, float] = {}
    for _, summary in summaries:
        resource.update(summary.metrics)
    if outcome.console_skipped_bytes:
        errors.append(f"the console could not keep up: {outcome.console_skipped_bytes} bytes of "
                      f"output were not echoed (output.log has every byte)")
    storage = base.storage_errors + outcome.storage_errors
    return base._replace(
        status=status, exit_code=outcome.exit_code, ended_at=outcome.ended_at,
        started_at=outcome.started_at, duration_s=outcome.duration_s, metrics=tuple(metrics),
        memory=memory, resource_metrics=resource, errors=tuple(errors),
        signal=outcome.interrupted_by, environment=environment,
        plugin_errors=tuple(plugin_errors), storage_errors=storage,
    )


def _status(outcome: RunOutcome, request: RunRequest) -> tuple[results.Status, list[str]]:
    """How the command ended, and why a run that did not end well is incomplete."""
    why = []
    if outcome.leftovers_killed:
        why.append(f"ended {outcome.leftovers_killed} process(es) the command left running")
    if outcome.interrupted_by:
        return results.INTERRUPTED, why + [
            f"interrupted by {outcome.interrupted_by}: results are partial"]
    if outcome.timed_out:
        return results.TIMEOUT, why + [f"timed out after {request.timeout_s:g} s: results are partial"]
    code = outcome.exit_code
    if code is None or code != 0:
        how = f"was killed by signal {-code}" if code is not None and code < 0 else \
            f"exited with code {code}"
        return results.FAILED, why + [f"the command {how}"]
    return results.OK, why
