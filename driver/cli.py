"""The ``bench-driver`` command line: argparse only; errors become messages and exit codes.

``bench-driver --task-name NAME`` (the old driver's form) is ``bench-driver run --task-name NAME``.
Plugins are loaded first (from the ``--config``, ``-p`` and ``--plugins-dir`` found in the
arguments), because they add options (``bench_driver_addoption``) and subcommands
(``bench_driver_register_commands``) to the command line, and check them
(``bench_driver_configure``) before anything starts.
"""

from __future__ import annotations

import signal
import sys


def _quiet_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C while the driver is still starting: a message and 130, never a traceback."""
    print("bench-driver: interrupted", file=sys.stderr)
    raise SystemExit(128 + signum)


# Installed before anything else is imported (only over Python's own default handler);
# main() puts the default back and turns KeyboardInterrupt into the same message.
if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _quiet_interrupt)

import argparse  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any, Callable, Sequence  # noqa: E402

from driver import __version__  # noqa: E402
from driver.errors import BenchDriverError, ConfigError, ExitCode, help_epilog  # noqa: E402

if TYPE_CHECKING:
    from driver.benchmark import RunOptions
    from driver.config import TaskConfig, TaskSpec
    from driver.plugins import Plugins

#: The built-in commands; plugins add more (``bench-driver plot`` is the timeline plugin's).
BUILTIN_COMMANDS = ("run", "list", "check", "plugins", "convert-cfg", "experiment", "compare",
                    "system")
#: Built-in commands whose options plugins may extend (``bench_driver_addoption``).
OPTION_COMMANDS = ("run", "list", "check", "plugins", "compare", "convert-cfg")
CONFIG_COMMANDS = ("run", "list", "check", "plugins")
GC_THRESHOLD = 20_000  # allocations between young-generation collections (see console)
OLD_PARAMETER_FLAGS = ("epochs", "kvstore", "dtype")


class Session:
    """What a command works with: its arguments, the plugins and the config (when it reads one)."""

    def __init__(self, args: argparse.Namespace, plugins: Plugins,
                 config: TaskConfig | None = None) -> None:
        self.args = args
        self.plugins = plugins
        self.config = config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    args_list = list(sys.argv[1:] if argv is None else argv)
    code: int = ExitCode.INTERNAL
    try:
        code = _main(args_list)
    except BenchDriverError as exc:
        print(f"bench-driver: error: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        print("bench-driver: interrupted", file=sys.stderr)
        code = ExitCode.SIGINT
    except BrokenPipeError:
        pass  # whoever read our standard output stopped reading; the work itself is done
    return _flush_stdout(code)


def console() -> None:
    """The ``bench-driver`` console script: :func:`main`, then the exit.

    When nothing waits for the interpreter's teardown (no ``atexit`` callback, no other thread),
    the process ends at once after flushing its standard streams: tearing down every module
    costs a run ~25M instructions (~8% of its start-up). Every file the driver writes is
    complete by then (atomic writes); a plugin that needs work done at exit registers it with
    :mod:`atexit`, and the exit is then the normal one.

    The cyclic garbage collector runs every :data:`GC_THRESHOLD` allocations instead of
    Python's 700: a start-up allocates ~20,000 objects that live to the end, and collecting
    young objects 20 times over cost a run ~8M instructions (3%); mypy raises its threshold
    for the same reason. Garbage without cycles is freed at once whatever the threshold."""
    gc.set_threshold(GC_THRESHOLD)
    code = main()  # standard output is flushed by main
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass  # no such stream, or a reader that went away: the code says what happened
    if _nothing_waits_for_teardown():
        os._exit(code)
    sys.exit(code)


def _nothing_waits_for_teardown() -> bool:
    import atexit
    import threading

    registered = getattr(atexit, "_ncallbacks", None)  # CPython's; elsewhere, exit normally
    return registered is not None and registered() == 0 and threading.active_count() == 1


def _main(args_list: list[str]) -> int:
    if args_list == ["--version"]:  # needs no plugins
        print(f"bench-driver {__version__}")
        return ExitCode.OK
    plugins = _load_plugins(_preparse(args_list))
    commands = plugins.registry("commands")
    names = BUILTIN_COMMANDS + tuple(commands)
    if args_list and not args_list[0].startswith("-") and args_list[0] not in names:
        return _unknown_command(args_list[0], names)
    if not args_list or args_list[0] not in names + ("-h", "--help", "--version"):
        args_list.insert(0, "run")  # the old driver's form: options only
    if args_list[0] == "experiment" and len(args_list) > 1 and not args_list[1].startswith("-"):
        args_list[:1] = ["run", "--experiment"]  # `experiment NAME ...` is `run --experiment NAME`
    named = args_list[0] if args_list[0] in names else None  # else -h or --help: all of them
    args = build_parser(plugins, named).parse_args(args_list)
    if args.command is None:
        build_parser(plugins).print_help()
        return ExitCode.USAGE
    session = Session(args, plugins)
    if args.command in CONFIG_COMMANDS:
        session.config = _load_config(args.config, plugins)
    if args.command == "run" and args.experiment is not None:  # its table's options, then ours
        from driver.experiments.command import option_arguments

        assert session.config is not None
        extra = option_arguments(session.config, args.experiment, args)
        if extra:
            rerun = args_list[:1] + extra + args_list[1:]
            args = session.args = build_parser(plugins, "run").parse_args(rerun)
    plugins.call_hook("bench_driver_configure", options=args, config=session.config)
    return int(args.handler(session))


def _unknown_command(word: str, names: Sequence[str]) -> int:
    """A first word that is no command: a typo (``lsit``), never the options of ``run``."""
    from driver.errors import closest

    close = closest(word, names)
    hint = f", did you mean {close!r}?" if close else ""
    print(f"bench-driver: error: unknown command {word!r}{hint} (commands: {', '.join(names)}; "
          f"bench-driver --help)", file=sys.stderr)
    return ExitCode.USAGE


def _flush_stdout(code: int) -> int:
    """Flush standard output; a reader that went away (``| head -1``) never changes the code."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python would fail flushing it again at exit
    return code


class Formatter(argparse.HelpFormatter):
    """argparse's help formatter, told the terminal's width: left to itself it imports shutil
    for it (even to add an argument), and shutil's imports (bz2, lzma) cost every start-up ~7M
    instructions."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        width = _terminal_columns() - 2 if width is None else width
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse's parser with :class:`Formatter`; its subcommands' parsers are Parsers too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)


@functools.cache  # argparse makes a formatter for every argument added: ask the terminal once
def _terminal_columns() -> int:
    """What ``shutil.get_terminal_size().columns`` says: $COLUMNS, else the terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        stream = sys.__stdout__
        try:
            columns = os.get_terminal_size(stream.fileno()).columns if stream else 0
        except (ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


def _preparse(args_list: Sequence[str]) -> argparse.Namespace:
    """The options that decide which plugins load, wherever they stand in the arguments."""
    early = Parser(add_help=False, allow_abbrev=False)
    _add_plugin_options(early)
    known, _ = early.parse_known_args([a for a in args_list if a not in ("-h", "--help")])
    return known


def _load_plugins(boot: argparse.Namespace) -> Plugins:
    from driver.config import plugin_dirs_of
    from driver.plugins import load_plugins

    blocked = [f[3:] for f in boot.plugin_flags if f.startswith("no:")]
    modules = [f for f in boot.plugin_flags if not f.startswith("no:")]
    repo_plugins = boot.config.parent / "plugins"
    dirs = ([repo_plugins] if repo_plugins.is_dir() else []) + plugin_dirs_of(boot.config) + \
        list(boot.plugins_dir)
    return load_plugins(plugin_dirs=dirs, blocked=blocked, extra_modules=modules,
                        trace=boot.trace_hooks)


def _load_config(path: Path, plugins: Plugins) -> TaskConfig:
    from driver.config import load_config

    return load_config(path, plugins.registry("config_tables"))


def build_parser(plugins: Plugins, command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every built-in and plugin command (for the help), or with *command*
    alone, the one the arguments name: building every command's parser and arguments costs
    each start ~15M instructions (argparse looks up its translations for every parser), and
    argparse parses that one command's arguments only."""
    parser = Parser(
        prog="bench-driver",
        description="Run a benchmark task from task_config.toml, scrape its log, measure its "
        "memory and write a JSON result.", epilog=help_epilog())
    parser.add_argument("--version", action="version", version=f"bench-driver {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, description, add_arguments) in _built_in_commands().items():
        if command in (None, name):
            chosen = sub.add_parser(name, help=help_text, description=description or help_text)
            add_arguments(chosen)
            if name in OPTION_COMMANDS:
                _add_plugin_arguments(plugins, name, chosen)
    for name, guarded in plugins.items("commands"):
        _plugin_command(sub, plugins, name, guarded, command in (None, name))
    return parser


#: ``name -> (help line, description or None, add its arguments to a parser)``.
Builder = Callable[[argparse.ArgumentParser], None]


def _built_in_commands() -> dict[str, tuple[str, str | None, Builder]]:
    from driver.system import SystemCommand

    return {
        "run": ("run a task (the default command)", None, _run_arguments),
        "list": ("list the tasks and experiments in the config", None,
                 lambda parser: _config_arguments(parser, _list)),
        "check": ("validate every task and experiment (or --task-name) without running "
                  "anything", None, _check_arguments),
        "plugins": ("list plugins and what they register", None,
                    lambda parser: _config_arguments(parser, _plugins)),
        "convert-cfg": ("convert an old INI task config to TOML", None, _convert_arguments),
        "experiment": ("run or resume [experiments.NAME] (the same as run --experiment NAME; it "
                       "takes every option of run)", None, _experiment_arguments),
        "compare": ("compare two results; exit 8 on a regression",
                    "Compare BASELINE and NEW: flat result files, run records, summary.json of "
                    "repeated runs, or directories holding one (experiment directories too).",
                    _compare_arguments),
        "system": (SystemCommand.help, None, lambda parser: _command_arguments(SystemCommand(),
                                                                               parser)),
    }


def _add_plugin_arguments(plugins: Plugins, command: str,
                          parser: argparse.ArgumentParser) -> None:
    try:
        plugins.call_hook("bench_driver_addoption", command=command, parser=parser)
    except argparse.ArgumentError as exc:
        from driver.errors import PluginError

        raise PluginError(f"a plugin added an option that {command!r} already has: {exc}; "
                          f"disable one of the plugins with -p no:NAME") from exc


def _plugin_command(sub: Any, plugins: Plugins, name: str, command: Any,
                    chosen: bool) -> None:
    from driver.errors import PluginError

    if name in BUILTIN_COMMANDS:
        raise PluginError(f"{plugins.origin('commands', name)}: {name!r} is a built-in command")
    if chosen:
        help_text = str(command.help or "")
        parser = sub.add_parser(name, help=help_text,
                                description=command.description or help_text)
        _command_arguments(command, parser)


def _command_arguments(command: Any, parser: argparse.ArgumentParser) -> None:
    """A :class:`driver.commands.Command`'s arguments and handler."""
    command.add_arguments(parser)
    parser.set_defaults(handler=lambda session: command.run(session.args, session.plugins))


def _add_plugin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("task_config.toml"),
                        help="task config file (default: ./task_config.toml)")
    parser.add_argument("-p", dest="plugin_flags", action="append", default=[], metavar="no:NAME",
                        help="-p no:NAME disables plugin NAME; -p MODULE loads a plugin module")
    parser.add_argument("--plugins-dir", action="append", default=[], type=Path,
                        help="also load drop-in plugins from DIR (repeatable)")
    parser.add_argument("--trace-hooks", action="store_true", help="print every hook call")


def _config_arguments(parser: argparse.ArgumentParser,
                      handler: Callable[[Session], int]) -> None:
    _add_plugin_options(parser)
    parser.set_defaults(handler=handler)


def _run_arguments(run: argparse.ArgumentParser) -> None:
    _config_arguments(run, _run)
    target = run.add_mutually_exclusive_group(required=True)
    target.add_argument("--task-name", help="the [tasks.NAME] to run")
    target.add_argument("--experiment", metavar="NAME",
                        help="run or resume [experiments.NAME] (docs/experiments.md)")
    run.add_argument("--num-gpus", type=int, help="GPUs to hand to the task (default: its num_gpus)")
    run.add_argument("--gpus", help="explicit GPU indices, e.g. 0,3")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="override a command parameter (repeatable)")
    for flag in OLD_PARAMETER_FLAGS:
        run.add_argument(f"--{flag}", help=f"same as --set {flag}=VALUE (old driver's flag)")
    run.add_argument("--seed", type=int, default=0, help="the {seed} parameter (default 0)")
    run.add_argument("--timeout", type=float, help="end the whole task after SECONDS")
    run.add_argument("--kill-grace", type=float, default=5.0,
                     help="seconds between SIGTERM and SIGKILL when ending the task (default 5)")
    run.add_argument("--runs-dir", type=Path, default=Path("bench-runs"),
                     help="where run directories go (default: ./bench-runs)")
    run.add_argument("--sample-interval", type=float, default=0.1,
                     help="seconds between memory samples (default 0.1)")
    run.add_argument("--quiet", action="store_true", help="do not echo the task's output")
    run.add_argument("--strict-system", action="store_true",
                     help="refuse to start on a noisy machine (see `bench-driver system`; exit 3)")
    _add_repeat_options(run)


def _add_repeat_options(run: argparse.ArgumentParser) -> None:
    """Repetitions and experiments (docs/experiments.md)."""
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
    run.add_argument("--verbose", action="store_true",
                     help="with --experiment: echo every run's output and summary (default: one "
                     "progress line, then a table per variant and metric; each run's output is "
                     "in its output.log)")
    run.add_argument("--keep-failed", action="store_true",
                     help="with --experiment: resuming keeps earlier runs that failed (default: "
                     "they run again; their directories are kept as REP.failed-N)")
    run.add_argument("-j", "--jobs", type=int, metavar="N",
                     help="with --repetitions or --experiment: run N runs at once, each in a "
                     "worker of its own, GPUs leased exclusively (docs/backends.md)")
    run.add_argument("--backend", metavar="NAME",
                     help="where the runs go: local (default with --jobs), ray, slurm, or a "
                     "plugin's backend (docs/backends.md)")


def _check_arguments(check: argparse.ArgumentParser) -> None:
    _config_arguments(check, _check)
    check.add_argument("--task-name", action="append", help="only these tasks")


def _convert_arguments(convert: argparse.ArgumentParser) -> None:
    convert.add_argument("old_config", help="the old task_config.cfg")
    convert.add_argument("-o", "--output", help="write here (default: standard output)")
    convert.set_defaults(handler=_convert)


def _experiment_arguments(alias: argparse.ArgumentParser) -> None:
    alias.add_argument("name", metavar="NAME")
    alias.set_defaults(handler=_run)


def _compare_arguments(compare: argparse.ArgumentParser) -> None:
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
    compare.set_defaults(handler=_compare)


# --- the commands -------------------------------------------------------------------------------


def _run(session: Session) -> int:
    from driver.benchmark import run_benchmark
    from driver.results import exit_code_for
    from driver.config import parse_overrides

    args, plugins, config = session.args, session.plugins, session.config
    assert config is not None
    pairs = list(args.set) + [f"{flag}={getattr(args, flag)}" for flag in OLD_PARAMETER_FLAGS
                              if getattr(args, flag) is not None]
    _check_run_flags(args)
    if args.experiment is not None:
        from driver.experiments.command import main_experiment

        return main_experiment(args, config, plugins, parse_overrides(pairs),
                               lambda task: _run_options(args, task, plugins))
    if args.benchmark is not None or args.fix or args.restart or args.keep_failed or \
            args.verbose:
        raise ConfigError("--benchmark, --fix, --restart, --keep-failed and --verbose apply to "
                          "--experiment NAME only")
    if (args.jobs is not None or args.backend is not None) and args.repetitions is None \
            and args.warmup is None:
        raise ConfigError("--jobs and --backend apply to --repetitions N and --experiment NAME; "
                          "a single run goes in this process")
    task = config.task(args.task_name, plugins.registry("compute_methods"),
                       parse_overrides(pairs))
    options = _run_options(args, task, plugins)
    if args.repetitions is not None or args.warmup is not None:
        from driver.experiments.repetitions import main_repeated

        return main_repeated(args, task, options, plugins)
    return exit_code_for(run_benchmark(task, options, plugins))


def _run_options(args: argparse.Namespace, task: TaskSpec, plugins: Plugins) -> RunOptions:
    """The RunOptions of the command line for *task*."""
    from driver.benchmark import RunOptions
    from driver.output import ECHO_OFF, ECHO_PLAIN, ECHO_TIMED
    from driver.report import ReportSettings, begin_once

    report = ReportSettings(options=args, framework=task.framework)
    return RunOptions(
        num_gpus=_non_negative("--num-gpus", args.num_gpus),
        gpus=_gpu_list(args.gpus),
        sample_interval_s=args.sample_interval,
        timeout_s=args.timeout,
        kill_grace_s=args.kill_grace,
        echo=ECHO_OFF if args.quiet else (ECHO_TIMED if sys.stdout.isatty() else ECHO_PLAIN),
        runs_dir=args.runs_dir,
        seed=args.seed,
        strict_system=args.strict_system,
        report=report,
        on_start=begin_once(plugins, report),
    )


def _check_run_flags(args: argparse.Namespace) -> None:
    """Numbers and paths of ``run`` checked before anything starts."""
    from driver.paths import check_directory_writable

    _positive("--sample-interval", args.sample_interval)
    if args.timeout is not None:
        _positive("--timeout", args.timeout)
    if not (math.isfinite(args.kill_grace) and args.kill_grace >= 0):
        raise ConfigError(f"--kill-grace {args.kill_grace}: expected a finite number of "
                          f"seconds >= 0")
    check_directory_writable(args.runs_dir, "--runs-dir")
    from driver.prefilter import engine_from

    engine_from(os.environ)  # BENCH_DRIVER_PREFILTER


def _compare(session: Session) -> int:
    from driver.experiments.compare import main_compare

    return main_compare(session.args, session.plugins)


def _list(session: Session) -> int:
    config = session.config
    assert config is not None
    for name, table in config.tasks.items():
        print(f"{name:<32} {table.get('description', '')}".rstrip())
    for name, table in config.experiments.items():
        described = table.get("description", "") if isinstance(table, dict) else ""
        print(f"{name:<32} experiment of {table.get('task', '?') if isinstance(table, dict) else '?'}"
              f"{': ' + described if described else ''}")
    return 0


def _check(session: Session) -> int:
    from driver.validate import main_check

    assert session.config is not None
    return main_check(session.args, session.config, session.plugins)


def _plugins(session: Session) -> int:
    plugins = session.plugins
    for name, info in plugins.infos.items():
        where = f" {info.path}" if info.path else ""
        print(f"{name}  [{info.source}]{where}")
        for kind, names in plugins.contributions(name).items():
            print(f"    {kind}: {', '.join(names)}")
    return 0


def _convert(session: Session) -> int:
    from driver.convert import main_convert

    return main_convert(session.args.old_config, session.args.output)


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
    from driver.checks import positive_finite

    return positive_finite(value, flag)
