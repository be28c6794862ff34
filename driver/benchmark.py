"""One benchmark run, start to finish: the pipeline config -> run -> scrape -> reduce -> report.

:func:`run_benchmark` takes a validated TaskSpec and the command-line options, hands GPUs to the
command, makes the run directory, runs the command with the samplers beside it, reduces the
scraped values, writes the run record, and gives the record to every reporter plugin.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from driver import results
from driver.config import TaskSpec
from driver.errors import (EXIT_COMMAND_FAILED, EXIT_MISSING_METRIC, EXIT_OK, EXIT_SIGINT,
                           EXIT_TIMEOUT, ConfigError, PluginError)
from driver.plugins import Plugins
from driver.reduce import ReduceContext, reduce_metrics, workers_for
from driver.report import ReportSettings
from driver.results import RunRecord
from driver.output import ECHO_PLAIN
from driver.runner import (DEFAULT_KILL_GRACE_S, RunOutcome, RunRequest, StopRequests,
                           run_command, utc_now)
from driver.sampling import DEFAULT_INTERVAL_S, Sampler, SamplerSummary, SamplingSettings
from driver.scrape import Scraper

DEFAULT_RUNS_DIR = Path("bench-runs")


@dataclass(frozen=True)
class RunOptions:
    """Choices from the command line that apply to one run."""

    num_gpus: int | None = None  # None: the task's num_gpus
    gpus: tuple[int, ...] | None = None  # explicit --gpus
    gpu_sampling: bool = True
    sample_interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float | None = None  # None: the task's timeout
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    echo: str = ECHO_PLAIN
    runs_dir: Path = DEFAULT_RUNS_DIR
    run_dir: Path | None = None  # fixed run directory (experiments); default: a new one
    seed: int = 0
    repetition: int = 0
    report: ReportSettings = field(default_factory=ReportSettings)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass(frozen=True)
class GpuPlan:
    """The GPUs handed to the command and the environment that says so."""

    indices: tuple[int, ...]  # NVML indices (empty when unchecked: --no-gpu-sampling, no NVML)
    count: int
    env: Mapping[str, str]


def plan_gpus(task: TaskSpec, options: RunOptions) -> GpuPlan:
    """Pick the command's GPUs; with none, hide every GPU (the task runs on CPU)."""
    wanted = len(options.gpus) if options.gpus is not None else (
        task.num_gpus if options.num_gpus is None else options.num_gpus)
    if wanted == 0:
        return GpuPlan((), 0, {"CUDA_VISIBLE_DEVICES": ""})
    from driver.gpus import assign as gpus

    assignment = gpus.assign_gpus(wanted, options.gpus, options.environ,
                                  gpu_sampling=options.gpu_sampling)
    return GpuPlan(assignment.indices, assignment.count, gpus.child_environment(assignment))


def exit_code_for(record: RunRecord) -> int:
    """The documented exit code for a finished run (see driver.errors)."""
    if record.status == results.INTERRUPTED:
        number = getattr(signal, record.signal or "", None)  # 128 + n, as a shell reports it
        return 128 + int(number) if number is not None else EXIT_SIGINT
    return {
        results.OK: EXIT_OK,
        results.TIMEOUT: EXIT_TIMEOUT,
        results.FAILED: EXIT_COMMAND_FAILED,
        results.MISSING_METRICS: EXIT_MISSING_METRIC,
    }[record.status]


def new_run_dir(runs_dir: Path, task_name: str) -> Path:
    """``RUNS_DIR/TASK/YYYYmmdd-HHMMSS-PID[-N]``: new for every run, never shared."""
    base = runs_dir / task_name / f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    for n in range(1000):
        candidate = base if n == 0 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise ConfigError(f"{runs_dir}: cannot make a new run directory for {task_name!r}")


def run_benchmark(task: TaskSpec, options: RunOptions, plugins: Plugins) -> RunRecord:
    """Run *task* once and report it. Bad input raises before the command starts.

    The stop signals are handled until the record and the flat result are written: a late
    signal never interrupts a write (the run stops at once if one came before it started)."""
    with StopRequests().installed() as stop:
        return _run_benchmark(task, options, plugins, stop)


def _run_benchmark(task: TaskSpec, options: RunOptions, plugins: Plugins,
                   stop: StopRequests) -> RunRecord:
    gpu_plan = plan_gpus(task, options)
    settings = SamplingSettings(options.sample_interval_s, gpu_plan.indices, options.gpu_sampling)
    samplers = _samplers(plugins, settings)
    methods = plugins.registry("compute_methods")
    run_dir = options.run_dir or new_run_dir(options.runs_dir, task.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    builtins: dict[str, str | int] = {
                "python": sys.executable, "num_gpus": gpu_plan.count,
                "seed": options.seed, "repetition": options.repetition, "run_dir": str(run_dir)}
    command = task.render_command(builtins)
    base = RunRecord(task=task.name, command=command, status="running", exit_code=None,
                     started_at=utc_now(), ended_at="", duration_s=0.0,
                     run_dir=str(run_dir), params={**task.params, **builtins},
                     num_gpus=gpu_plan.count, gpus=gpu_plan.indices)
    results.write_json_atomic(run_dir / "record.json", base.to_dict())
    options.report.output.unlink(missing_ok=True)  # never leave an earlier run's values behind
    scraper = Scraper(task.metrics)
    request = RunRequest(
        command=command, cwd=task.cwd, log_path=run_dir / "output.log",
        env={**task.env, **gpu_plan.env},
        timeout_s=options.timeout_s if options.timeout_s is not None else task.timeout_s,
        kill_grace_s=options.kill_grace_s, echo=options.echo,
        timeline_path=run_dir / "timeline.csv", sample_interval_s=options.sample_interval_s,
    )
    try:
        outcome = run_command(request, scraper, samplers, stop=stop)
    except BaseException as exc:  # a driver bug or a resource error: the tree is already ended
        failed = replace(base, status=results.FAILED, ended_at=utc_now(), errors=(
            f"bench-driver failed during the run: {type(exc).__name__}: {exc}",))
        results.write_json_atomic(run_dir / "record.json", failed.to_dict())
        raise
    metrics = reduce_metrics(task.metrics, scraper.close(), methods,
                             ReduceContext(workers_for(task, options.environ)))
    summaries = [_summarise(s, outcome) for s in samplers]
    record = _finish(base, task, outcome, metrics, summaries, request)
    results.write_json_atomic(run_dir / "record.json", record.to_dict())
    report(record, options.report, plugins)
    return record


def report(record: RunRecord, settings: ReportSettings, plugins: Plugins) -> None:
    """Hand *record* to every reporter; one failing reporter does not stop the others."""
    failures = []
    for name, reporter in plugins.registry("reporters").items():
        try:
            reporter.report(record, settings)
        except Exception as exc:
            failures.append(f"reporter {name!r} ({plugins.owner('reporters', name)}): "
                            f"{type(exc).__name__}: {exc}")
    if failures:
        raise PluginError("; ".join(failures))


def _samplers(plugins: Plugins, settings: SamplingSettings) -> list[Sampler]:
    found = []
    for name, factory in plugins.registry("samplers").items():
        sampler = factory(settings)
        if sampler is not None:
            found.append(sampler)
    return found


def _summarise(sampler: Sampler, outcome: RunOutcome) -> tuple[str, SamplerSummary]:
    try:
        return sampler.name, sampler.summary(outcome.exit)
    except Exception as exc:
        return sampler.name, SamplerSummary(errors=[f"sampler {sampler.name!r}: {exc}"])


def _finish(
    base: RunRecord,
    task: TaskSpec,
    outcome: RunOutcome,
    metrics: Sequence[Any],
    summaries: Sequence[tuple[str, SamplerSummary]],
    request: RunRequest,
) -> RunRecord:
    errors = list(outcome.sampler_errors) + list(outcome.notes)
    for _, summary in summaries:
        errors.extend(summary.errors)
    status, why = _status(outcome, request)
    errors.extend(why)
    missing = [m.name for m in metrics if m.missing and not m.optional]
    if status == results.OK and missing:
        status = results.MISSING_METRICS
    if missing:
        errors.append(f"required metric(s) never matched: {', '.join(missing)}")
    memory: dict[str, Any] = {name: dict(s.details) for name, s in summaries}
    memory["sampler_cpu_s"] = round(outcome.sampler_cost_s, 6)
    resource: dict[str, float] = {}
    for _, summary in summaries:
        resource.update(summary.metrics)
    return replace(
        base, status=status, exit_code=outcome.exit_code, ended_at=outcome.ended_at,
        started_at=outcome.started_at, duration_s=outcome.duration_s, metrics=tuple(metrics),
        memory=memory, resource_metrics=resource, errors=tuple(errors),
        signal=outcome.interrupted_by, environment=results.environment(task.cwd),
    )


def _status(outcome: RunOutcome, request: RunRequest) -> tuple[str, list[str]]:
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
