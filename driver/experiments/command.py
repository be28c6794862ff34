"""The command line of experiments: ``bench-driver experiment NAME`` and its ``options`` table.

The matrix, its variants and the runs are :mod:`driver.experiments.matrix`'s; this module turns
the parsed command line into them, and an experiment's ``[experiments.NAME.options]`` table into
command-line arguments.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Sequence

from driver.benchmark import RunOptions
from driver.config import TaskConfig, TaskSpec, parse_overrides
from driver.errors import ConfigError, ExitCode, did_you_mean
from driver.experiments.matrix import (build_variants, load_experiment, run_experiment,
                                       select_points)
from driver.experiments.repetitions import launch_from, plan_from_args, report_errors
from driver.output import ECHO_OFF
from driver.plugins import Plugins
from driver.report import publish

#: Options an experiment's ``options`` table cannot set (they choose the config and plugins, or
#: what runs).
_NOT_OPTIONS = ("command", "handler", "config", "plugin_flags", "plugins_dir", "trace_hooks",
                "experiment", "task_name", "restart", "benchmark", "fix", "set")


def option_arguments(config: TaskConfig, name: str, options: Any) -> list[str]:
    """The ``[experiments.NAME.options]`` table as command-line arguments (``jobs = 4`` ->
    ``--jobs 4``, ``slurm_partition = "gpu"`` -> ``--slurm-partition gpu``), to be parsed
    before the real command line, which wins. Keys are the options' names (*options*: the parsed
    command line, whose attributes they must be); ConfigError for anything else."""
    table = config.experiments.get(name, {})
    table = table.get("options", {}) if isinstance(table, dict) else {}
    where = f"{config.path}: [experiments.{name}.options]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} = {table!r}: expected a table of option = value")
    found: list[str] = []
    allowed = [k for k in vars(options) if k not in _NOT_OPTIONS]
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{where}: {key!r} is not an option this experiment can set"
                              f"{did_you_mean(key, allowed)}; e.g. jobs = 4, backend = \"slurm\""
                              f", slurm_partition = \"gpu\" (see bench-driver run --help)")
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(f"{where} {key} = {value!r}: expected a string, number or boolean")
        flag = "--" + key.replace("_", "-")
        found += ([flag] if value is True else []) if isinstance(value, bool) else \
            [flag, str(value)]
    return found


def main_experiment(args: Any, config: TaskConfig, plugins: Plugins, overrides: Mapping[str, str],
                    make_options: Callable[[TaskSpec], RunOptions]) -> int:
    """``bench-driver --experiment NAME``: validate everything, then run or resume it."""
    methods = plugins.registry("compute_methods")
    spec = load_experiment(config, args.experiment, methods)
    points = select_points(spec, args.benchmark, parse_fix(args.fix))
    variants = build_variants(config, spec, methods, overrides, points)
    compact = not getattr(args, "verbose", False)
    options = make_options(variants[0].task)
    if compact:  # the output of every run is in its output.log
        from driver.noise import warn_once_per_check

        options = options._replace(echo=ECHO_OFF)
        warn_once_per_check()
    plan = plan_from_args(args, spec.repetitions, spec.warmup)
    launch = launch_from(args, plugins)
    try:
        index, summaries, failures = run_experiment(spec, variants, options, plugins, plan,
                                                    args.restart, launch, compact)
    finally:
        if launch is not None:
            launch.backend.close()
    failures += publish(plugins, "report_experiment", index, summaries, options.report)
    print(f"bench-driver: experiment directory: {index.directory}", file=sys.stderr)
    code = next((c for c in (s.exit_code() for s in summaries) if c), ExitCode.OK)
    return report_errors(failures, code)


def parse_fix(pairs: Sequence[str]) -> dict[str, str]:
    """``["searcher=rea"]`` from ``--fix`` -> ``{"searcher": "rea"}``."""
    return parse_overrides(pairs, "--fix", "searcher=rea")
