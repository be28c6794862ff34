"""Live searches on an execution backend: every trial is a driver run of a task, N in flight.

:class:`BackendExecutor` is the :class:`~driver.search.Executor` of live searches: ``submit``
turns a trial into a :class:`~driver.backends.RunJob` of the *trial task* (:class:`TrialRuns`:
e.g. ``nas201_live_trial`` with ``--set arch=...``) and hands it to a backend (local, ray, slurm);
``next_result`` waits for the next run to end and turns its record into a
:class:`~driver.search.TrialResult`. Each trial is thus an ordinary run: a run directory, a
record, memory figures, the plugins the search loaded.

The clock is real: a trial's finish time is the wall time since the search began, so that a
time budget is the user's seconds with N trials in flight (on a simulated clock of measured
costs N trials would "fit" N times the budget). ``cost_s`` is the run's own ``duration_s``
(start-up and data loading included), and ``info`` holds every metric of the record and the
trial's ``started_s``/``finished_s`` on the search's clock.

Failure policy: a trial whose run did not end ``ok`` (it failed, timed out, lost its metric, its
worker died) is told to the searcher as ``failed_value`` (default 0.0, the worst accuracy: a
crash cost, as SMAC's) with ``info["failed"]`` saying why; ``on_failure="stop"`` ends the search
instead (:class:`EvaluationFailed`, exit 4), cancelling the other trials. A stop signal on the
search (SIGINT, SIGTERM...) cancels every trial in flight (:class:`SearchInterrupted`).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping, Sequence

from driver.backends import Backend, Finished, Placement, RunJob
from driver.errors import BenchDriverError, ConfigError, ExitCode
from driver.search import Evaluator, Executor, Trial, TrialResult

if TYPE_CHECKING:
    from driver.config import TaskConfig, TaskSpec
    from driver.plugins import Plugins, PluginSet
    from driver.runner import StopRequests

POLICIES = ("tell", "stop")
CANCEL_WAIT_S = 30.0  # how long cancelled trials get to record themselves interrupted
POLL_S = 0.2  # how often the wait for a trial looks at stop signals


class EvaluationFailed(BenchDriverError):
    """A trial's run failed and the policy is ``stop``."""

    exit_code = ExitCode.COMMAND_FAILED


class SearchInterrupted(BenchDriverError):
    """A stop signal reached the search: its trials were cancelled."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"{signal_name}: the search stopped; the trials in flight were "
                         f"cancelled (each records itself interrupted)")
        self.exit_code = ExitCode[signal_name]


@dataclass(frozen=True)
class TrialRuns:
    """How trials become runs of ``task_name`` (a task of *config*).

    A trial's configuration goes to the task's ``config_param`` (``arch``), its fidelity, rounded
    to a whole number >= 1, to ``fidelity_param`` (``stop_epoch``; without a fidelity the value of
    *fixed*); *fixed* are the ``--set`` values of every trial. Trial ``N`` runs in
    ``runs_dir/NNNN`` with *seed*; its value is the record's metric ``value_metric``.
    """

    config: TaskConfig
    task_name: str
    compute_methods: Collection[str]
    runs_dir: Path
    plugin_set: PluginSet
    options: argparse.Namespace  # the backend's options; reporters read them too
    value_metric: str = "valid_accuracy"
    fixed: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0
    config_param: str = "arch"
    fidelity_param: str = "stop_epoch"

    def task_for(self, trial: Trial) -> TaskSpec:
        """The trial task with the trial's ``--set`` values (ConfigError when it lacks one)."""
        sets = {**self.fixed, self.config_param: str(trial.config)}
        if trial.fidelity is not None:
            sets[self.fidelity_param] = str(max(1, round(trial.fidelity)))
        return self.config.task(self.task_name, self.compute_methods, sets)

    def check(self, example: Trial) -> None:
        """Refuse, before the first trial, a trial task that lacks a parameter or the metric."""
        task = self.task_for(replace(example, fidelity=1.0))
        names = [m.name for m in task.metrics]
        if self.value_metric not in names:
            raise ConfigError(f"trial task {self.task_name!r} has no metric "
                              f"{self.value_metric!r}; its metrics: {', '.join(names)}")

    def job_for(self, trial: Trial) -> RunJob:
        """The run of *trial*: its own run directory, echo off, as one run of a set."""
        from driver.benchmark import RunOptions
        from driver.output import ECHO_OFF
        from driver.report import ReportSettings

        task = self.task_for(trial)
        run_dir = (self.runs_dir / f"{trial.number:04d}").absolute()
        options = RunOptions(runs_dir=self.runs_dir, run_dir=run_dir, seed=self.seed,
                             echo=ECHO_OFF, environ={},
                             report=ReportSettings(options=self.options, in_set=True))
        return RunJob(str(run_dir), f"trial {trial.number} ({trial.config})", task, options,
                      self.plugin_set, os.getcwd(), gpus=task.num_gpus)


class RunsEvaluator(Evaluator):
    """What the searcher is set up with when trials run as runs: the fidelities of the
    in-process evaluator it stands for; it evaluates nothing itself."""

    def __init__(self, stands_for: Evaluator) -> None:
        self._max, self._min = stands_for.max_fidelity(), stands_for.min_fidelity()

    def evaluate(self, trial: Trial) -> TrialResult:
        """Never called: the executor runs the trials."""
        raise NotImplementedError("trials run as runs on a backend (BackendExecutor)")

    def max_fidelity(self) -> float | None:
        """The in-process evaluator's full fidelity."""
        return self._max

    def min_fidelity(self) -> float | None:
        """The in-process evaluator's lowest fidelity."""
        return self._min


class BackendExecutor(Executor):
    """Trials as runs on *backend* (a made, checked backend); use it as a context manager so
    that the trials still in flight at the end (an error, a signal, a spent budget) are
    cancelled and the backend closed."""

    def __init__(self, backend: Backend, runs: TrialRuns, *, on_failure: str = "tell",
                 failed_value: float = 0.0, stop: StopRequests | None = None,
                 devices: Sequence[str] = (), clock: Callable[[], float] = time.monotonic
                 ) -> None:
        if on_failure not in POLICIES:
            raise ConfigError(f"on_failure={on_failure!r}: expected one of {', '.join(POLICIES)}")
        self.backend, self.runs = backend, runs
        self.on_failure, self.failed_value = on_failure, failed_value
        self.stop, self.clock = stop, clock
        self.free_devices = list(devices)  # the GPUs trials lease when the backend places none
        self.began_s = clock()
        self._live: dict[str, tuple[Trial, float, tuple[str, ...]]] = {}  # job key -> trial ...

    def submit(self, trial: Trial) -> None:
        """Start *trial*'s run on the backend (it does not wait for it)."""
        job = self.runs.job_for(trial)
        count = 0 if self.backend.places_gpus else job.gpus
        if count > len(self.free_devices):
            raise ConfigError(f"trial {trial.number} needs {count} GPU(s), "
                              f"{len(self.free_devices)} are free: lower the concurrency")
        devices = tuple(self.free_devices[:count])
        del self.free_devices[:count]
        self.backend.submit(job, Placement(devices))
        self._live[job.key] = (trial, self.clock() - self.began_s, devices)

    def next_result(self) -> tuple[float, TrialResult]:
        """Wait for the next run to end; its result, at the wall time since the search began."""
        while True:
            self._check_stop()
            finished = self.backend.next_finished(POLL_S)
            if finished is not None:
                break
        finish_s = self.clock() - self.began_s
        trial, start_s, devices = self._live.pop(finished.job.key)
        self.free_devices.extend(devices)
        result = self._result(trial, finished, start_s, finish_s)
        if "failed" in result.info and self.on_failure == "stop":
            raise EvaluationFailed(f"trial {trial.number} ({trial.config}) failed: "
                                   f"{result.info['failed']} (run directory {finished.job.key})")
        return finish_s, result

    @property
    def in_flight(self) -> int:
        """Trials submitted whose runs have not been returned yet."""
        return len(self._live)

    def _check_stop(self) -> None:
        received = self.stop.received if self.stop is not None else None
        if received is not None:
            raise SearchInterrupted(received)

    def _result(self, trial: Trial, finished: Finished, start_s: float,
                finish_s: float) -> TrialResult:
        record = finished.record
        values = {m.name: m.value for m in record.metrics} if record is not None else {}
        info: dict[str, Any] = {**values, "run_dir": finished.job.key, "started_s": start_s,
                                "finished_s": finish_s, "host": finished.host,
                                "status": record.status if record is not None else "none"}
        value = values.get(self.runs.value_metric)
        reason = _failure(finished, value, self.runs.value_metric)
        if reason is not None or value is None or record is None:
            info["failed"] = reason
            return TrialResult(trial, self.failed_value, finish_s - start_s, info)
        return TrialResult(trial, value, record.duration_s, info)

    def __enter__(self) -> BackendExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._live:
                self._cancel()
        finally:
            self.backend.close()

    def _cancel(self) -> None:
        """Pass the stop on to every trial in flight; give them a while to record it."""
        received = self.stop.received if self.stop is not None else None
        self.backend.cancel(received or "SIGTERM")
        deadline = self.clock() + CANCEL_WAIT_S
        while self._live and self.clock() < deadline:
            finished = self.backend.next_finished(POLL_S)
            if finished is not None:
                self._live.pop(finished.job.key, None)


def _failure(finished: Finished, value: float | None, metric: str) -> str | None:
    """Why the run gave no value, or None when it gave one."""
    from driver import results

    record = finished.record
    if finished.failure is not None:
        return finished.failure
    if record is None:
        return "the backend returned no record"
    if record.status != results.OK:
        errors = "; ".join(record.errors[-2:])
        return f"the run ended {record.status!r} (exit code {record.exit_code})" + \
            (f": {errors}" if errors else "")
    if value is None:
        return f"the run's log never matched the metric {metric!r}"
    return None


def backend_options(text: str, plugins: Plugins,
                    defaults: Mapping[str, Any] | None = None) -> argparse.Namespace:
    """``--backend-args TEXT`` (a live search's ``backend_args``, ``datagen run``'s option),
    parsed by the options the backend plugins add to ``run``; *defaults* for those TEXT does
    not give. ConfigError for an option no backend has (abbreviations included)."""
    import shlex

    parser = argparse.ArgumentParser(prog="--backend-args", add_help=False, exit_on_error=False,
                                     allow_abbrev=False)
    plugins.call_hook("bench_driver_addoption", command="run", parser=parser)
    parser.set_defaults(**(defaults or {}))
    try:
        options, unknown = parser.parse_known_args(shlex.split(text))
    except (argparse.ArgumentError, ValueError) as exc:
        raise ConfigError(f"--backend-args {text!r}: {exc}") from None
    if unknown:
        raise ConfigError(f"--backend-args {text!r}: unknown option(s) {' '.join(unknown)}; "
                          f"the backends' options are listed by `bench-driver run --help`")
    return options
