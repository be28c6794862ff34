"""The search task's side of live searches on an execution backend (``--backend local|ray|slurm``).

With a backend, every trial is a driver run of ``--trial-task`` (default ``nas201_live_trial``,
one cell trained by tasks/nas201_train.py) on that backend, ``--concurrency`` at once; see
:mod:`driver.search_backend` for the clock and the failure policy. The trial task gets
``--set`` values from the search's evaluator options (``dataset``, ``mode``, ``data_dir``,
every ``--evaluator-option``), the evaluator's full fidelity as ``epochs`` and ``stop_epoch``
(a trial with a fidelity stops earlier), and the configuration as ``arch``; a value it has no
parameter for is refused before the first trial. ``--backend-args`` are the driver's own backend
options (``--address``, ``--ray-*``, ``--slurm-*``), in one string.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from driver.errors import ConfigError
from driver.plugins import Plugins
from driver.search import Evaluator, SearchOutcome, Trial
from driver.search_backend import POLICIES, BackendExecutor, TrialRuns
from driver.search_backend import backend_options as parse_backend_args

IN_PROCESS = "none"  # the evaluator trains in the search's own process, one trial at a time
TRIAL_TASK = "nas201_live_trial"
ADOPTED_WAIT_S = 5.0


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a search whose trials run on a backend."""
    group = parser.add_argument_group("live evaluations on a backend (docs/backends.md)")
    group.add_argument("--backend", default=IN_PROCESS,
                       help="none (default): evaluate in this process; local, ray, slurm: each "
                            "trial a run of --trial-task there, --concurrency at once")
    group.add_argument("--backend-args", default="", metavar="'OPTIONS'",
                       help="the driver's backend options in one string, e.g. "
                            "'--address HOST:PORT' or '--slurm-executor local'")
    group.add_argument("--trial-task", default=TRIAL_TASK,
                       help=f"the task one trial runs (default {TRIAL_TASK})")
    group.add_argument("--trial-config", default="task_config.toml",
                       help="the config that defines --trial-task (default task_config.toml)")
    group.add_argument("--trials-dir", help="where the trials' run directories go")
    group.add_argument("--on-failure", choices=POLICIES, default="tell",
                       help="tell (default): a failed trial is told as --failed-value; stop: "
                            "the search ends with an error")
    group.add_argument("--failed-value", type=float, default=0.0,
                       help="the value a failed trial is told (default 0.0, the worst accuracy)")


@contextmanager
def executor_for(args: argparse.Namespace, plugins: Plugins, space: Any, evaluator: Evaluator,
                 evaluator_options: dict[str, Any]) -> Iterator[BackendExecutor | None]:
    """None for ``--backend none``; else the backend executor, checked before the first trial,
    with the stop signals handled (each cancels the trials in flight)."""
    if args.backend == IN_PROCESS:
        yield None
        return
    from driver.backends import make_backend
    from driver.runner import StopRequests

    from driver import proctree

    runs = trial_runs(args, plugins, trial_sets(args, evaluator, evaluator_options))
    runs.check(Trial(0, space.sample(random.Random(args.seed))))
    proctree.become_subreaper()  # a trial's helpers outlive its worker by a moment: see below
    with StopRequests().installed() as stop:
        backend: Any = make_backend(plugins, args.backend, runs.options, args.concurrency)
        try:
            with BackendExecutor(backend, runs, on_failure=args.on_failure,
                                 failed_value=args.failed_value, stop=stop,
                                 devices=gpu_pool(backend, runs, args.concurrency)) as executor:
                yield executor
        finally:
            reap_adopted(ADOPTED_WAIT_S)


def reap_adopted(timeout_s: float) -> None:
    """Wait (at most *timeout_s*) for the processes this search adopted to exit: a worker's
    watchdog exits just after its worker, and left to the driver above it would count as a
    process the search left running."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no child left
        if pid == 0:
            time.sleep(0.05)


def gpu_pool(backend: Any, runs: TrialRuns, concurrency: int) -> tuple[str, ...]:
    """The GPUs the trials lease, one set per trial in flight, when the backend places none
    (local): this search's CUDA_VISIBLE_DEVICES; ConfigError when they do not go round."""
    needed = 0 if backend.places_gpus else runs.task_for(Trial(0, "")).num_gpus * concurrency
    if not needed:
        return ()
    from driver.gpus.assign import usable_pool

    pool = usable_pool(os.environ)
    devices = tuple(d for d in pool.cuda_visible_devices.split(",") if d)
    if needed > len(devices):
        raise ConfigError(f"--concurrency {concurrency} trials of {runs.task_name!r} need "
                          f"{needed} GPU(s); the pool has {len(devices)} "
                          f"({pool.cuda_visible_devices or 'none'}): lower the concurrency")
    return devices


def trial_runs(args: argparse.Namespace, plugins: Plugins, sets: dict[str, str]) -> TrialRuns:
    """How this search's trials become runs (see the module docstring)."""
    from driver.config import load_config

    config = load_config(args.trial_config, plugins.registry("config_tables"))
    return TrialRuns(config, args.trial_task, plugins.registry("compute_methods"),
                     Path(args.trials_dir), plugins.plugin_set, backend_options(args, plugins),
                     fixed=sets, seed=args.seed)


def trial_sets(args: argparse.Namespace, evaluator: Evaluator,
               evaluator_options: dict[str, Any]) -> dict[str, str]:
    """The ``--set`` values every trial run gets."""
    given = {"dataset": args.dataset, "mode": args.mode, "data_dir": args.data_dir,
             **evaluator_options}
    sets = {key: str(value) for key, value in given.items() if value is not None}
    full = evaluator.max_fidelity()
    if full is not None:  # the evaluator's resolved schedule (epochs=0: the mode's default)
        sets["epochs"] = sets["stop_epoch"] = str(round(full))
    return sets


def backend_options(args: argparse.Namespace, plugins: Plugins) -> argparse.Namespace:
    """``--backend-args`` parsed by the options the backend plugins add to ``run``."""
    options = parse_backend_args(args.backend_args, plugins)
    options.runs_dir = args.trials_dir
    return options


def check_outcome(outcome: SearchOutcome) -> SearchOutcome:
    """*outcome*, unless every trial failed (its best is then a failure): an error saying why."""
    failed = outcome.best.info.get("failed")
    if failed is None:
        return outcome
    from driver.search_backend import EvaluationFailed

    raise EvaluationFailed(f"no trial of {outcome.evaluations} did better than a failure "
                           f"(--failed-value); trial {outcome.best.trial.number}: {failed}")
