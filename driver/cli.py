"""The ``bench-driver`` command line: argparse only; errors become messages and exit codes.

``bench-driver --task-name NAME`` (the old driver's form) is ``bench-driver run --task-name NAME``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from driver import __version__
from driver.errors import EXIT_INTERNAL, BenchDriverError, ConfigError

if TYPE_CHECKING:
    from driver.benchmark import RunOptions
    from driver.config import TaskConfig, TaskSpec
    from driver.plugins import Plugins

SUBCOMMANDS = ("run", "list", "check", "plugins", "convert-cfg", "plot", "experiment", "compare")
OLD_PARAMETER_FLAGS = ("epochs", "kvstore", "dtype")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in SUBCOMMANDS + ("-h", "--help", "--version"):
        args_list.insert(0, "run")
    if args_list[0] == "experiment" and len(args_list) > 1 and not args_list[1].startswith("-"):
        args_list[:1] = ["run", "--experiment"]  # `experiment NAME ...` is `run --experiment NAME`
    args = build_parser().parse_args(args_list)
    try:
        return int(args.handler(args))
    except BenchDriverError as exc:
        print(f"bench-driver: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bench-driver: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_INTERNAL


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="bench-driver",
        description="Run a benchmark task from task_config.toml, scrape its log, measure its "
        "memory and write a JSON result.",
        epilog="Exit codes: 0 ok, 3 bad configuration, 4 command failed, 5 required metric "
        "missing, 6 timeout, 7 plugin error, 8 compare found a regression, 130/143 "
        "interrupted. See README.md.",
    )
    parser.add_argument("--version", action="version", version=f"bench-driver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a task (the default command)")
    _add_config_options(run)
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("--task-name", help="the [tasks.NAME] to run")
    target.add_argument("--experiment", metavar="NAME",
                        help="run or resume [experiments.NAME] (docs/experiments.md)")
    run.add_argument("--num-gpus", type=int, help="GPUs to hand to the task (default: its num_gpus)")
    run.add_argument("--gpus", help="explicit GPU indices, e.g. 0,3")
    run.add_argument("--no-gpu-sampling", action="store_true", help="do not sample GPUs via NVML")
    run.add_argument("--framework", help="result keys become FRAMEWORK.task.metric")
    run.add_argument("--metrics-suffix", help="result keys become task.metric.SUFFIX")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a command parameter (repeatable)")
    for flag in OLD_PARAMETER_FLAGS:
        run.add_argument(f"--{flag}", help=f"same as --set {flag}=VALUE (old driver's flag)")
    run.add_argument("--seed", type=int, default=0, help="the {seed} parameter (default 0)")
    run.add_argument("--timeout", type=float, help="end the whole task after SECONDS")
    run.add_argument("--kill-grace", type=float, default=5.0,
                     help="seconds between SIGTERM and SIGKILL when ending the task (default 5)")
    run.add_argument("--output", type=Path, default=Path("dlbenchmark_result.json"),
                     help="flat JSON result (default: ./dlbenchmark_result.json)")
    run.add_argument("--runs-dir", type=Path, default=Path("bench-runs"),
                     help="where run directories go (default: ./bench-runs)")
    run.add_argument("--sample-interval", type=float, default=0.1,
                     help="seconds between memory samples (default 0.1)")
    run.add_argument("--quiet", action="store_true", help="do not echo the task's output")
    run.add_argument("--plot", choices=("auto", "always", "never"), default="auto",
                     help="draw timeline.png: auto = runs of 10 s or more, when matplotlib is "
                     "installed (default)")
    _add_repeat_options(run)
    run.set_defaults(handler=_run)

    listing = sub.add_parser("list", help="list the tasks in the config")
    _add_config_options(listing)
    listing.set_defaults(handler=_list)

    check = sub.add_parser("check", help="validate every task and experiment (or --task-name) "
                           "without running anything")
    _add_config_options(check)
    check.add_argument("--task-name", action="append", help="only these tasks")
    check.set_defaults(handler=_check)

    plugins = sub.add_parser("plugins", help="list plugins and what they register")
    _add_config_options(plugins)
    plugins.set_defaults(handler=_plugins)

    convert = sub.add_parser("convert-cfg", help="convert an old INI task config to TOML")
    convert.add_argument("old_config", help="the old task_config.cfg")
    convert.add_argument("-o", "--output", help="write here (default: standard output)")
    convert.set_defaults(handler=_convert)

    plot = sub.add_parser("plot", help="draw a run directory's timeline.csv as timeline.png")
    plot.add_argument("run_dir", type=Path)
    plot.set_defaults(handler=_plot)
    _add_experiment_and_compare(sub)
    return parser


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("task_config.toml"),
                        help="task config file (default: ./task_config.toml)")
    parser.add_argument("-p", dest="plugin_flags", action="append", default=[], metavar="no:NAME",
                        help="-p no:NAME disables plugin NAME; -p MODULE loads a plugin module")
    parser.add_argument("--plugins-dir", action="append", default=[], type=Path,
                        help="also load drop-in plugins from DIR (repeatable)")
    parser.add_argument("--trace-hooks", action="store_true", help="print every hook call")


def _load(args: argparse.Namespace) -> tuple[TaskConfig, Plugins]:
    from driver.config import load_config
    from driver.plugins import TRACE_ENV, load_plugins

    if args.trace_hooks:
        os.environ[TRACE_ENV] = "1"
    config = load_config(args.config)
    blocked = [f[3:] for f in args.plugin_flags if f.startswith("no:")]
    modules = [f for f in args.plugin_flags if not f.startswith("no:")]
    repo_plugins = args.config.parent / "plugins"
    dirs = ([repo_plugins] if repo_plugins.is_dir() else []) + list(config.plugin_dirs) + \
        list(args.plugins_dir)
    plugins = load_plugins(plugin_dirs=dirs, blocked=blocked, extra_modules=modules)
    return config, plugins


def _run(args: argparse.Namespace) -> int:
    from driver.benchmark import exit_code_for, run_benchmark
    from driver.config import parse_overrides

    if args.output.is_file():  # a run that fails to start must not leave old values behind
        args.output.unlink()
    config, plugins = _load(args)
    pairs = list(args.set) + [f"{flag}={getattr(args, flag)}" for flag in OLD_PARAMETER_FLAGS
                              if getattr(args, flag) is not None]
    if args.experiment is not None:
        from driver.experiments.matrix import main_experiment

        return main_experiment(args, config, plugins,
                               parse_overrides(pairs), lambda task: _run_options(args, task))
    if args.benchmark is not None or args.fix or args.restart:
        raise ConfigError("--benchmark, --fix and --restart apply to --experiment NAME only")
    task = config.task(args.task_name, plugins.registry("compute_methods"),
                       parse_overrides(pairs))
    options = _run_options(args, task)
    if args.repetitions is not None or args.warmup is not None:
        from driver.experiments.repetitions import main_repeated

        return main_repeated(args, task, options, plugins)
    record = run_benchmark(task, options, plugins)
    if args.junit is not None or args.markdown is not None:
        from plugins.ci_report import publish_run

        publish_run(record, args.seed, args.junit, args.markdown)
    return exit_code_for(record)


def _run_options(args: argparse.Namespace, task: TaskSpec) -> RunOptions:
    """The RunOptions of the command line for *task*."""
    from driver.benchmark import RunOptions
    from driver.report import ReportSettings
    from driver.output import ECHO_OFF, ECHO_PLAIN, ECHO_TIMED

    return RunOptions(
        num_gpus=_non_negative("--num-gpus", args.num_gpus),
        gpus=_gpu_list(args.gpus),
        gpu_sampling=not args.no_gpu_sampling,
        sample_interval_s=_positive("--sample-interval", args.sample_interval),
        timeout_s=None if args.timeout is None else _positive("--timeout", args.timeout),
        kill_grace_s=args.kill_grace,
        echo=ECHO_OFF if args.quiet else (ECHO_TIMED if sys.stdout.isatty() else ECHO_PLAIN),
        runs_dir=args.runs_dir,
        seed=args.seed,
        report=ReportSettings(args.output, args.framework or task.framework, args.metrics_suffix,
                              plot=args.plot),
    )


def _add_repeat_options(run: argparse.ArgumentParser) -> None:
    """Repetitions, experiments and CI outputs (docs/experiments.md)."""
    run.add_argument("--repetitions", type=int, metavar="N",
                     help="run N times (seed = --seed + repetition index) and report statistics")
    run.add_argument("--warmup", type=int, metavar="K",
                     help="first run K unmeasured warmup runs (recorded, not in the statistics)")
    run.add_argument("--statistic", choices=("median", "mean", "min", "max"), default="median",
                     help="the value a repeated run reports in the flat JSON (default median)")
    run.add_argument("--benchmark", metavar="KEY",
                     help="with --experiment: vary matrix KEY only; the other keys take their "
                     "first value or their --fix value")
    run.add_argument("--fix", action="append", default=[], metavar="KEY=VALUE",
                     help="with --experiment: only this value of matrix KEY (repeatable)")
    run.add_argument("--restart", action="store_true",
                     help="with --experiment: discard the selected variants' earlier runs "
                     "instead of resuming them")
    run.add_argument("--junit", type=Path, metavar="PATH", help="also write JUnit XML here")
    run.add_argument("--markdown", type=Path, metavar="PATH",
                     help="also write a Markdown summary here")


def _add_experiment_and_compare(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``experiment`` alias and the ``compare`` subcommand."""
    alias = sub.add_parser("experiment", help="run or resume [experiments.NAME] (the same as "
                           "run --experiment NAME; it takes every option of run)")
    alias.add_argument("name", metavar="NAME")
    alias.set_defaults(handler=_run)
    compare = sub.add_parser(
        "compare", help="compare two results; exit 8 on a regression",
        description="Compare BASELINE and NEW: flat result files, run records, summary.json of "
        "repeated runs, or directories holding one (experiment directories too).")
    compare.add_argument("baseline", type=Path, metavar="BASELINE")
    compare.add_argument("new", type=Path, metavar="NEW")
    compare.add_argument("--threshold", action="append", default=[], metavar="[METRIC=]LIMIT",
                         help="allowed worsening: 5%% (relative) or 0.01 (absolute), for METRIC "
                         "or for all metrics (repeatable; default 5%%)")
    compare.add_argument("--direction", action="append", default=[], metavar="METRIC=higher|lower",
                         help="which way is better for METRIC (overrides the record and the "
                         "defaults by name)")
    compare.add_argument("--metric", action="append", default=[], metavar="METRIC",
                         help="compare only these metrics (repeatable)")
    compare.add_argument("--statistic", choices=("median", "mean", "min", "max"),
                         default="median", help="statistic compared for repeated runs")
    compare.add_argument("--test", choices=("welch", "mannwhitney"), default="welch",
                         help="significance test when both sides have repetitions (default welch)")
    compare.add_argument("--alpha", type=float, default=0.05,
                         help="significance level (default 0.05)")
    compare.add_argument("--junit", type=Path, metavar="PATH", help="also write JUnit XML here")
    compare.add_argument("--markdown", type=Path, metavar="PATH",
                         help="also write the table as Markdown here")
    compare.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from driver.experiments.compare import main_compare

    return main_compare(args)


def _list(args: argparse.Namespace) -> int:
    from driver.config import load_config

    config = load_config(args.config)
    for name, table in config.tasks.items():
        print(f"{name:<32} {table.get('description', '')}".rstrip())
    return 0


def _check(args: argparse.Namespace) -> int:
    config, plugins = _load(args)
    methods = plugins.registry("compute_methods")
    names = args.task_name or list(config.tasks)
    for name in names:
        config.task(name, methods)
    experiments = [] if args.task_name else list(config.experiments)
    if experiments:
        from driver.experiments.matrix import build_variants, load_experiment, select_points

        for name in experiments:
            spec = load_experiment(config, name, methods)
            build_variants(config, spec, methods, {}, select_points(spec))
    print(f"{args.config}: {len(names)} task(s) and {len(experiments)} experiment(s) OK")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    _, plugins = _load(args)
    for name, info in plugins.infos.items():
        where = f" {info.path}" if info.path else ""
        print(f"{name}  [{info.source}]{where}")
        for kind, names in plugins.contributions(name).items():
            print(f"    {kind}: {', '.join(names)}")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from driver.convert import main_convert

    return main_convert(args.old_config, args.output)


def _plot(args: argparse.Namespace) -> int:
    from plugins.timeline_plot.draw import plot_timeline

    print(plot_timeline(args.run_dir))
    return 0


def _gpu_list(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        indices = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--gpus {text!r}: expected GPU indices like 0,3") from None
    if len(set(indices)) != len(indices) or any(i < 0 for i in indices):
        raise ConfigError(f"--gpus {text!r}: indices must be distinct and >= 0")
    return indices


def _non_negative(flag: str, value: int | None) -> int | None:
    if value is not None and value < 0:
        raise ConfigError(f"{flag} {value}: expected a whole number >= 0")
    return value


def _positive(flag: str, value: float) -> float:
    if not value > 0:
        raise ConfigError(f"{flag} {value}: expected a number > 0")
    return value
