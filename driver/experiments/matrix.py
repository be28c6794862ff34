"""Experiment matrices, resumable and safe to run twice at once.

An experiment (``[experiments.NAME]`` in task_config.toml) runs one set per *variant*: a point
of its parameter matrix, in ``RUNS_DIR/NAME/VARIANT/``, with VARIANT like ``searcher=rea,dataset=
cifar100``. An experiment directory is locked (``fcntl.flock`` on ``.lock``) while it runs, and
runs resume: a run whose ``record.json`` says it finished ``ok`` is kept; one that failed
(``failed``, ``missing_metrics``, ``timeout``) is set aside as ``REP.failed-N`` and run again,
unless ``--keep-failed``; an interrupted or killed one is run again.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from driver.benchmark import RunOptions
from driver.config import BUILTIN_PARAMS, ParamValue, TaskConfig, TaskSpec, param_text
from driver.errors import BenchDriverError, ConfigError, did_you_mean
from driver.experiments.progress import Progress
from driver.experiments.repetitions import Launch, RepeatPlan, resume_sets, run_set
from driver.experiments.summary import ExperimentIndex, SetSummary, VariantEntry
from driver.plugins import Plugins
from driver.report import publish

EXPERIMENT_KEYS = ("task", "description", "matrix", "params", "repetitions", "warmup", "options")
LOCK_NAME = ".lock"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+\-]")
_MAX_VARIANT_NAME = 200


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated ``[experiments.NAME]`` table."""

    name: str
    task: str
    matrix: Mapping[str, tuple[ParamValue, ...]]
    params: Mapping[str, ParamValue]
    repetitions: int = 1
    warmup: int = 0
    description: str = ""


@dataclass(frozen=True)
class Variant:
    """One point of an experiment's matrix: its directory name, values and resolved task."""

    name: str
    values: Mapping[str, ParamValue]
    task: TaskSpec


def load_experiment(config: TaskConfig, name: str, methods: Mapping[str, Any]) -> ExperimentSpec:
    """Check ``[experiments.NAME]`` of *config* against its task; raise ConfigError if wrong."""
    if name not in config.experiments:
        known = ", ".join(sorted(config.experiments)) or "(none)"
        raise ConfigError(f"{config.path}: no experiment {name!r}"
                          f"{did_you_mean(name, config.experiments)}; experiments: {known}")
    table = config.experiments[name]
    where = f"{config.path}: [experiments.{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} = {table!r}: expected a table")
    _check_keys(where, table)
    task_name = table.get("task")
    if not isinstance(task_name, str) or task_name not in config.tasks:
        raise ConfigError(f"{where} task = {task_name!r}: expected the name of a [tasks.NAME]"
                          f"{did_you_mean(str(task_name), config.tasks)}; tasks: "
                          f"{', '.join(sorted(config.tasks)) or '(none)'}")
    base = config.task(task_name, methods)
    return ExperimentSpec(
        name=name, task=task_name,
        matrix=_matrix(where, table.get("matrix", {}), base),
        params=_fixed_params(where, table.get("params", {}), base, table.get("matrix", {})),
        repetitions=_count(where, "repetitions", table.get("repetitions", 1), 1),
        warmup=_count(where, "warmup", table.get("warmup", 0), 0),
        description=_text(where, "description", table.get("description", "")),
    )  # ``options`` is applied to the command line (option_arguments)


def select_points(
    spec: ExperimentSpec, benchmark: str | None = None, fix: Mapping[str, str] | None = None
) -> list[dict[str, ParamValue]]:
    """The matrix points to run, in matrix order.

    Without *benchmark*: every combination, restricted to the ``--fix`` values. With *benchmark*
    (a matrix key, e.g. ``searcher``): that key varies, the others are fixed at ``--fix`` values
    or at their first value, as DeepArchitect benchmarks one component at a time.
    """
    fix = dict(fix or {})
    _check_selection(spec, benchmark, fix)
    choices: dict[str, tuple[ParamValue, ...]] = {}
    for key, values in spec.matrix.items():
        if key in fix:
            choices[key] = tuple(v for v in values if param_text(v) == fix[key])
        elif benchmark is None or key == benchmark:
            choices[key] = values
        else:
            choices[key] = values[:1]
    keys = list(choices)
    return [dict(zip(keys, combo)) for combo in itertools.product(*choices.values())]


def variant_name(values: Mapping[str, ParamValue]) -> str:
    """``key=value,key=value`` in matrix order; characters unsafe in a file name become ``_``."""
    if not values:
        return "default"
    return ",".join(f"{_UNSAFE.sub('_', k)}={_UNSAFE.sub('_', param_text(v))}"
                    for k, v in values.items())


def build_variants(
    config: TaskConfig,
    spec: ExperimentSpec,
    methods: Mapping[str, Any],
    overrides: Mapping[str, str],
    points: Sequence[Mapping[str, ParamValue]],
) -> list[Variant]:
    """Resolve and validate the task of every point (before anything runs)."""
    for key in overrides:
        if key in spec.matrix:
            raise ConfigError(f"--set {key}=...: {key!r} is a matrix key of experiment "
                              f"{spec.name!r}; choose its values with --fix {key}=VALUE")
    fixed = {k: param_text(v) for k, v in spec.params.items()}
    variants = []
    for point in points:
        values = {**fixed, **overrides, **{k: param_text(v) for k, v in point.items()}}
        variants.append(Variant(variant_name(point), point, config.task(spec.task, methods,
                                                                          values)))
    return variants


def _check_keys(where: str, table: Mapping[str, Any]) -> None:
    for key in table:
        if key not in EXPERIMENT_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, EXPERIMENT_KEYS)};"
                              f" known keys: {', '.join(EXPERIMENT_KEYS)}")


def _matrix(where: str, matrix: Any, base: TaskSpec) -> dict[str, tuple[ParamValue, ...]]:
    if not isinstance(matrix, dict):
        raise ConfigError(f"{where} matrix = {matrix!r}: expected a table of KEY = [values]")
    checked: dict[str, tuple[ParamValue, ...]] = {}
    for key, values in matrix.items():
        _check_param(f"{where} matrix.{key}", key, base)
        if not isinstance(values, list) or not values or not all(
                isinstance(v, (str, int, float, bool)) for v in values):
            raise ConfigError(f"{where} matrix.{key} = {values!r}: expected a non-empty list of "
                              f"strings, numbers or booleans, e.g. {key} = [\"a\", \"b\"]")
        texts = [param_text(v) for v in values]
        if len(set(texts)) != len(texts):
            raise ConfigError(f"{where} matrix.{key} = {values!r}: a value is listed twice")
        checked[key] = tuple(values)
    _check_names(where, checked)
    return checked


def _check_param(at: str, key: str, base: TaskSpec) -> None:
    if key in BUILTIN_PARAMS:
        raise ConfigError(f"{at}: {key!r} is a built-in parameter set by the driver "
                          f"(use --seed and --repetitions for seeds and repetitions)")
    if key not in base.params:
        known = ", ".join(sorted(base.params)) or "(none)"
        raise ConfigError(f"{at}: task {base.name!r} has no parameter {key!r}"
                          f"{did_you_mean(key, base.params)}; its parameters: {known}; declare "
                          f"it with a default in [tasks.{base.name}.params]")


def _check_names(where: str, matrix: Mapping[str, tuple[ParamValue, ...]]) -> None:
    seen: dict[str, dict[str, ParamValue]] = {}
    keys = list(matrix)
    for combo in itertools.product(*matrix.values()):
        point = dict(zip(keys, combo))
        name = variant_name(point)
        if name in seen:
            raise ConfigError(f"{where} matrix: points {seen[name]!r} and {point!r} share the "
                              f"directory name {name!r}; make the values differ in letters, "
                              f"digits or . _ + -")
        if len(name) > _MAX_VARIANT_NAME:
            raise ConfigError(f"{where} matrix: directory name {name[:60]!r}... is longer than "
                              f"{_MAX_VARIANT_NAME} characters; use shorter keys or values")
        seen[name] = point


def _fixed_params(where: str, table: Any, base: TaskSpec, matrix: Any) -> dict[str, ParamValue]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} params = {table!r}: expected a table of NAME = value")
    for key, value in table.items():
        _check_param(f"{where} params.{key}", key, base)
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{where} params.{key} = {value!r}: expected a string, number or "
                              f"boolean")
        if isinstance(matrix, dict) and key in matrix:
            raise ConfigError(f"{where} params.{key}: also a matrix key; keep it in one of them")
    return dict(table)


def _count(where: str, key: str, value: Any, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ConfigError(f"{where} {key} = {value!r}: expected a whole number >= {least}")
    return value


def _text(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} {key} = {value!r}: expected a string")
    return value


def _check_selection(spec: ExperimentSpec, benchmark: str | None, fix: Mapping[str, str]) -> None:
    keys = list(spec.matrix)
    if benchmark is not None and benchmark not in spec.matrix:
        raise ConfigError(f"--benchmark {benchmark!r}: not a matrix key of experiment "
                          f"{spec.name!r}{did_you_mean(benchmark, keys)}; keys: "
                          f"{', '.join(keys) or '(none)'}")
    for key, text in fix.items():
        if key not in spec.matrix:
            raise ConfigError(f"--fix {key}={text}: not a matrix key of experiment {spec.name!r}"
                              f"{did_you_mean(key, keys)}; keys: {', '.join(keys) or '(none)'}")
        if key == benchmark:
            raise ConfigError(f"--fix {key}={text}: {key!r} is the --benchmark key, which varies")
        texts = [param_text(v) for v in spec.matrix[key]]
        if text not in texts:
            raise ConfigError(f"--fix {key}={text}: {text!r} is not in matrix.{key}"
                              f"{did_you_mean(text, texts)}; values: {', '.join(texts)}")


# --- experiments --------------------------------------------------------------------------------


@contextmanager
def experiment_lock(exp_dir: Path) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``EXP_DIR/.lock``; a second holder gets a ConfigError.
    Yields the lock's file descriptor.

    The kernel drops the lock when the process dies, even by SIGKILL, so a lock never goes stale;
    the file descriptor is not inherited by the benchmark commands (only by the workers of a
    backend, so that the lock holds until the last of them ends).
    """
    exp_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(exp_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ConfigError(f"{exp_dir}: this experiment is being run by process {holder} "
                              f"(lock {exp_dir / LOCK_NAME}); wait for it, or pass another "
                              f"--runs-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield fd
    finally:
        os.close(fd)


def run_experiment(
    spec: ExperimentSpec,
    variants: Sequence[Variant],
    options: RunOptions,
    plugins: Plugins,
    plan: RepeatPlan,
    restart: bool = False,
    launch: Launch | None = None,
    compact: bool = False,
) -> tuple[ExperimentIndex, list[SetSummary], list[BenchDriverError]]:
    """Run (or resume) every variant's set under the experiment lock; return the experiment's
    index, the summaries of the variants that ran and the reporters' errors. With *launch*, the
    runs of every variant go through its backend, ``jobs`` at a time; *compact*: one progress
    line on the console (:class:`~driver.experiments.progress.Progress`)."""
    exp_dir = options.runs_dir.absolute() / spec.name
    with experiment_lock(exp_dir) as lock_fd:
        for variant in variants:
            if restart:
                shutil.rmtree(_inside(exp_dir / variant.name, exp_dir), ignore_errors=True)
        kept = resume_sets([(exp_dir / v.name, v.task) for v in variants], options, plan,
                           spec.name)
        _write_index(exp_dir, spec)  # experiment.json exists before the first run
        if launch is not None:
            return _run_launched(spec, variants, options, plugins, plan, launch, lock_fd,
                                 compact)
        to_run = len(variants) * len(plan.slots()) - kept
        progress = Progress(to_run, 1, compact=True) if compact else None
        try:
            return _run_serially(spec, variants, options, plugins, plan, progress)
        finally:
            if progress is not None:
                progress.close()


def _run_serially(spec: ExperimentSpec, variants: Sequence[Variant], options: RunOptions,
                  plugins: Plugins, plan: RepeatPlan, progress: Progress | None
                  ) -> tuple[ExperimentIndex, list[SetSummary], list[BenchDriverError]]:
    """Every variant's set in this process, one run at a time."""
    exp_dir = options.runs_dir.absolute() / spec.name
    summaries: list[SetSummary] = []
    failures: list[BenchDriverError] = []
    index = _write_index(exp_dir, spec)
    for variant in variants:
        summary = run_set(variant.task, options, plugins, exp_dir / variant.name, plan,
                          _header(spec, variant), progress)
        summaries.append(summary)
        failures += publish(plugins, "report_set", summary, options.report)
        index = _write_index(exp_dir, spec)
        if summary.exit_code() >= 128:  # interrupted: stop, a later run resumes
            break
    return index, summaries, failures


def _header(spec: ExperimentSpec, variant: Variant) -> SetSummary:
    return SetSummary(variant.task.name, 0, 0, 0, "", (), {}, experiment=spec.name,
                      variant=variant.name, values=dict(variant.values))


def _run_launched(spec: ExperimentSpec, variants: Sequence[Variant], options: RunOptions,
                  plugins: Plugins, plan: RepeatPlan, launch: Launch, lock_fd: int,
                  compact: bool) -> tuple[ExperimentIndex, list[SetSummary],
                                          list[BenchDriverError]]:
    """Every variant's runs through a backend (the workers inherit the lock)."""
    from driver.experiments.parallel import SetToRun, run_sets

    exp_dir = options.runs_dir.absolute() / spec.name
    sets = [SetToRun(v.task, exp_dir / v.name, _header(spec, v)) for v in variants]
    summaries = run_sets(sets, options, plugins, plan, launch.backend, launch.jobs, (lock_fd,),
                         compact)
    failures: list[BenchDriverError] = []
    for summary in summaries:
        failures += publish(plugins, "report_set", summary, options.report)
    return _write_index(exp_dir, spec), summaries, failures


def _inside(path: Path, root: Path) -> Path:
    """*path*, refusing any that would leave *root* (a variant name is never a path)."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise ConfigError(f"{path}: outside the experiment directory {root}; refusing to touch it")
    return path


def _write_index(exp_dir: Path, spec: ExperimentSpec) -> ExperimentIndex:
    """experiment.json over every variant with a summary so far."""
    entries = []
    for point in select_points(spec):
        name = variant_name(point)
        path = exp_dir / name / "summary.json"
        if path.is_file():
            entries.append(VariantEntry(name, point, f"{name}/summary.json",
                                        SetSummary.load(path).complete))
    index = ExperimentIndex(spec.name, spec.task, spec.description,
                            {k: list(v) for k, v in spec.matrix.items()}, tuple(entries),
                            str(exp_dir))
    index.save(exp_dir / "experiment.json")
    return index
