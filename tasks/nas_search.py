"""Run one black-box NAS search as a benchmark task, with scrape-friendly progress lines.

    python tasks/nas_search.py --searcher rea --space nb201 --dataset cifar10-valid --seed 0 \\
        --time-budget 12000

Searcher, space and evaluator are looked up by name in the plugin registries (an evaluator named
like the space, unless ``--evaluator`` says otherwise: ``--evaluator live`` trains every cell, and
the budget is then real seconds). ``--mode toy|full`` and ``--data-dir`` go to evaluators that take
them, ``--evaluator-option KEY=VALUE`` to the evaluator. ``--trials-file PATH`` writes one JSON line
per counted trial (number, arch, value, cost, clock, the evaluator's info) as the search goes, for
``tasks/nas201_pareto.py``. ``--concurrency N`` keeps N trials in flight on the search's clock
(results are told in completion order); with ``--backend local|ray|slurm`` (tasks/_backend.py)
each trial is a run of ``--trial-task`` on that backend, N at once, on the wall clock.
``--protocol transfer|per-dataset`` (NAS-Bench-201, see
``plugins/nas201/protocols.py``) fills the data set, the budget and the searcher preset that the
command line leaves open, and adds the chosen cell's accuracy on the protocol's columns
(``final: report_<dataset>_<split>=``); ``--preset NAME`` picks a searcher's named settings.
Output, one line per evaluation, then a final block (every value on its own line, so that each
pattern has exactly one group)::

    search: evaluations=12 time=1302.4 value=90.9 best=91.02
    final: best_valid_accuracy=91.2467
    final: best_value=91.42
    final: evaluations=110
    final: time_s=11952.1
    final: arch=|nor_conv_3x3~0|+|...|
    final: report_cifar100_x_valid=72.9     (with --protocol transfer; one per held column)

``best_value`` is the best value the searcher observed (on nb201: one training run's validation
accuracy); ``best_valid_accuracy`` (evaluators that report it) is, on nb201, the mean validation
accuracy over training runs of that chosen architecture: the number to compare with the paper;
on live, the accuracy its training measured.
Exit codes: 0 done, 2 usage error, 3 configuration or data error, 7 plugin error.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
from typing import Any, Callable, Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from driver.errors import BenchDriverError, ConfigError, did_you_mean  # noqa: E402
from driver.guard import Guarded, call  # noqa: E402
from driver.plugins import Plugins, load_task_plugins  # noqa: E402
from driver.search import (  # noqa: E402
    SearchBudget, SearchOutcome, Searcher, SearchSpace, TrialResult, check_requirements,
    run_search,
)
from driver.search_backend import RunsEvaluator  # noqa: E402
from tasks._backend import (  # noqa: E402
    IN_PROCESS, add_backend_arguments, check_outcome, executor_for,
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; exactly one budget kind may be omitted, not both."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--searcher", required=True, help="registered searcher name, e.g. rea")
    parser.add_argument("--space", default="nb201", help="registered search space (default nb201)")
    parser.add_argument("--evaluator", help="registered evaluator (default: named like the space)")
    parser.add_argument("--dataset", help="nb201: cifar10-valid, cifar10, cifar100, ImageNet16-120")
    parser.add_argument("--seed", type=int, default=0, help="seeds the searcher and the evaluator")
    parser.add_argument("--time-budget", type=float,
                        help="simulated seconds, e.g. 12000 (0 or absent: the protocol's)")
    parser.add_argument("--max-evaluations", type=int,
                        help="number of evaluations (0 or absent: only the time budget)")
    parser.add_argument("--cost-epochs", type=float,
                        help="nb201: charge train_time * N/200 per evaluation (default 12)")
    parser.add_argument("--mode", help="toy or full, for evaluators that take a mode (live, nb201)")
    parser.add_argument("--data-dir", help="live: the folder of the data set files")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="searcher option, e.g. population_size=20 (repeatable)")
    parser.add_argument("--evaluator-option", action="append", default=[], metavar="KEY=VALUE",
                        help="evaluator option, e.g. epochs=12 (repeatable)")
    parser.add_argument("--trials-file", help="write every counted trial here (JSON lines)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="trials in flight at once on the search's clock (default 1: serial)")
    parser.add_argument("--protocol", default="none",
                        help="nb201: transfer (the paper's) or per-dataset (NATS-Bench's); sets "
                             "the budget, the preset and the reported columns (default none)")
    parser.add_argument("--preset", help="searcher preset, e.g. nb201 or nats-bench (default: "
                                         "the protocol's; none: the searcher's defaults)")
    parser.add_argument("--quiet", action="store_true", help="print only the final lines")
    add_backend_arguments(parser)
    args = parser.parse_args(argv)
    if args.time_budget == 0:
        args.time_budget = None
    if args.max_evaluations == 0:
        args.max_evaluations = None
    if args.concurrency < 1:
        parser.error(f"--concurrency {args.concurrency!r}: keep at least 1 trial in flight")
    if args.backend != IN_PROCESS and args.trials_dir is None:
        parser.error(f"--backend {args.backend}: give --trials-dir DIR (the trials' runs)")
    if args.time_budget is None and args.max_evaluations is None and args.protocol == "none":
        parser.error("give --time-budget SECONDS or --max-evaluations N (or both), or --protocol")
    return args


def apply_protocol(args: argparse.Namespace) -> Any:
    """Fill the data set, the budget and the preset from ``--protocol`` where the command line
    left them open; the protocol (None for ``none``), checked before anything is built."""
    if args.protocol == "none":
        return None
    from plugins.nas201.protocols import protocol

    chosen = protocol(args.protocol)
    args.dataset = args.dataset or next(iter(chosen.budgets_s))
    budget_s = chosen.budget_s(args.dataset)
    if args.time_budget is None:
        args.time_budget = budget_s
    args.preset = args.preset or chosen.preset
    return chosen


def parse_options(pairs: Sequence[str], flag: str = "--option") -> dict[str, Any]:
    """``["population_size=20", "eta=3.0"]`` -> ``{"population_size": 20, "eta": 3.0}``."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {pair!r}: expected KEY=VALUE, e.g. {flag} name=3")
        try:
            options[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key] = text  # a bare word is a string
    return options


def lookup(plugins: Plugins, kind: str, name: str) -> Any:
    """The registered object *name* of registry *kind*, every call into it guarded, or a
    ConfigError listing what is registered."""
    registry = plugins.registry(kind)
    if name not in registry:
        known = ", ".join(sorted(registry)) or "(none)"
        what = kind[:-1].replace("_", " ")
        raise ConfigError(f"no {what} {name!r}{did_you_mean(name, registry)}; registered: {known}")
    return plugins.get(kind, name)


def evaluator_options(factory: Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    """The evaluator options the command line gave; ``seed``, ``mode`` and ``data_dir`` only if
    the factory takes them (a table needs no data directory)."""
    wanted = {"dataset": args.dataset, "cost_epochs": args.cost_epochs,
              **parse_options(args.evaluator_option, "--evaluator-option")}
    options = {key: value for key, value in wanted.items() if value is not None}
    accepted = inspect.signature(factory).parameters
    name = args.evaluator or args.space
    for key in options:
        if key not in accepted:
            known = ", ".join(k for k in accepted if k != "space")
            raise ConfigError(f"evaluator {name!r} takes no option {key!r}"
                              f"{did_you_mean(key, accepted)}; it takes {known}")
    optional = {"seed": args.seed, "mode": args.mode, "data_dir": args.data_dir,
                "device": None if args.backend == IN_PROCESS else "cpu"}  # the runs train
    options.update({k: v for k, v in optional.items() if k in accepted and v is not None})
    return options


def run(args: argparse.Namespace) -> SearchOutcome:
    """Load the plugins the driver loaded, build space, evaluator and searcher (checked against
    each other before the first evaluation), and search within the budget."""
    plugins = load_task_plugins()
    space = lookup(plugins, "search_spaces", args.space).create()
    factory = lookup(plugins, "evaluators", args.evaluator or args.space)
    evaluator = factory.create(space, **evaluator_options(factory.target, args))
    searcher_class = lookup(plugins, "searchers", args.searcher)
    check_requirements(searcher_class.target, space.target, args.searcher, args.space)
    options = searcher_options(plugins, searcher_class.target, args)
    made = call(searcher_class.origin, "the searcher's constructor", _searcher_with_options,
                searcher_class.target, space, args.seed, options, args.searcher)
    searcher = Guarded(made, searcher_class.origin)
    budget = SearchBudget(args.max_evaluations, args.time_budget)
    log = None if args.quiet else (lambda line: print(line, flush=True))
    with TrialsFile(args.trials_file) as record, executor_for(
            args, plugins, space, evaluator, parse_options(args.evaluator_option)) as executor:
        try:
            return run_search(searcher, evaluator if executor is None else RunsEvaluator(evaluator),
                              budget, log, concurrency=args.concurrency, executor=executor,
                              on_result=record)
        except ValueError as exc:  # e.g. the budget ended before the first evaluation finished
            raise ConfigError(f"search {args.searcher!r} on {args.space!r}: {exc}") from None


def searcher_options(plugins: Plugins, cls: type[Searcher], args: argparse.Namespace
                     ) -> dict[str, Any]:
    """The preset's options for *cls* (none if it names no such preset), then ``--option``s.
    A preset no registered searcher names is a ConfigError."""
    if args.preset in (None, "none"):
        return parse_options(args.option)
    known = {name for searcher in plugins.registry("searchers").values()
             for name in getattr(searcher, "presets", {})}
    if args.preset not in known:
        raise ConfigError(f"--preset {args.preset!r}: no searcher has this preset"
                          f"{did_you_mean(args.preset, known)}; presets: "
                          f"{', '.join(sorted(known)) or '(none)'}, or none")
    return {**cls.presets.get(args.preset, {}), **parse_options(args.option)}


def _searcher_with_options(cls: type[Searcher], space: SearchSpace, seed: int,
                           options: dict[str, Any], name: str) -> Searcher:
    """Make the searcher; options it rejects (TypeError, ValueError) are the user's error."""
    try:
        return cls(space, seed=seed, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"searcher {name!r}: {exc}") from None


class TrialsFile:
    """A context manager whose value records each counted result (``run_search``'s
    ``on_result``) as one JSON line, flushed, so an interrupted search keeps what it evaluated;
    with no path it records nothing."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._file: Any = None

    def __enter__(self) -> Callable[[float, TrialResult], None] | None:
        if self.path is None:
            return None
        self._file = open(self.path, "w", encoding="utf-8")
        return self.write

    def write(self, finish_s: float, result: TrialResult) -> None:
        """One line: the trial, its value and cost, and the search's clock when it finished."""
        row = {"number": result.trial.number, "config": result.trial.config,
               "fidelity": result.trial.fidelity, "value": result.value, "cost_s": result.cost_s,
               "time_s": finish_s, "info": dict(result.info)}
        self._file.write(json.dumps(row, default=str) + "\n")
        self._file.flush()

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def print_reports(chosen: Any, dataset: str, outcome: SearchOutcome) -> None:
    """The protocol's columns for the chosen cell: ``final: report_<dataset>_<split>=ACC``, one
    line each; a column the table does not hold gets a ``note:`` line instead."""
    from plugins.nas201.protocols import reported_accuracy

    index = outcome.best.info.get("index")
    for column in chosen.columns(dataset):
        value = None if index is None else reported_accuracy(index, column)
        key = "report_" + "_".join(column).replace("-", "_")
        if value is None:
            print(f"note: {key}=n/a (the table holds no {column[1]} accuracy)")
        else:
            print(f"final: {key}={value:.6g}")


def print_final(outcome: SearchOutcome) -> None:
    """The final block: one ``final: KEY=VALUE`` per line."""
    best = outcome.best
    for key in ("mean_valid_accuracy", "valid_accuracy"):  # nb201's, live's
        if key in best.info:
            print(f"final: best_valid_accuracy={best.info[key]:.6g}")
            break
    print(f"final: best_value={best.value:.6g}")
    print(f"final: evaluations={outcome.evaluations}")
    print(f"final: time_s={outcome.time_s:.1f}")
    print(f"final: arch={best.trial.config}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors become one message on stderr and the documented exit code."""
    args = parse_args(argv)
    try:
        chosen = apply_protocol(args)
        outcome = check_outcome(run(args))
        print_final(outcome)
        if chosen is not None:
            print_reports(chosen, args.dataset, outcome)
    except BenchDriverError as exc:
        print(f"nas_search: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
