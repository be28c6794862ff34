"""``bench-driver history``: show the values over time and commit, import old results, check the
latest values against their history (exit 8 on a regression, with compare's CI outputs).

Only the command line lives here (it is built on every start); the actions are in
plugins.history.actions, imported when one runs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from driver.commands import Command
from driver.errors import ConfigError

if TYPE_CHECKING:
    from driver.plugins import Plugins
    from plugins.history.check import CheckOptions

ACTIONS = ("import", "check")
USAGE = ("bench-driver history [TASK] | history import DIR... | history check [TASK]")
HEAD = ("started", "commit", "series", "value", "spread", "n", "host")


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """``--db`` / ``--runs-dir``: which history a reading command opens."""
    parser.add_argument("--db", type=Path, metavar="PATH",
                        help="the history database (default: RUNS_DIR/history.sqlite)")
    parser.add_argument("--runs-dir", type=Path, default=Path("bench-runs"),
                        help="where the runs went (default: ./bench-runs)")


def database(args: argparse.Namespace) -> Path:
    """The history file *args* name."""
    from plugins.history import default_database

    return Path(args.db) if args.db else default_database(args.runs_dir)


def check_options(args: argparse.Namespace, command: str) -> CheckOptions:
    """``--lookback``, ``--z``, ``--threshold`` (and ``--direction`` where the command has it)
    checked: ConfigError for a value that cannot be used, never one silently ignored."""
    from driver.experiments.compare import parse_directions, parse_thresholds
    from plugins.history.check import CheckOptions

    if args.lookback < 2 or not args.z_threshold > 0:
        raise ConfigError(f"{command}: --lookback {args.lookback} must be >= 2 and --z "
                          f"{args.z_threshold} > 0")
    thresholds = parse_thresholds([args.threshold])
    if set(thresholds) != {""}:
        raise ConfigError(f"{command}: --threshold {args.threshold!r}: one limit for every "
                          f"metric here (5% or 0.01), not METRIC=LIMIT")
    return CheckOptions(thresholds[""], args.lookback, z_threshold=args.z_threshold,
                        directions=parse_directions(getattr(args, "direction", [])))


class HistoryCommand(Command):
    """``bench-driver history ...``."""

    help = "show, import or check the results history (docs/history.md)"
    description = (f"{USAGE}. Without an action: every value of TASK (or of every task) over "
                   "time and commit. import: bring in run, set and experiment directories and "
                   "old flat result files (idempotent). check: flag metrics whose latest value "
                   "departs from their history (robust lookback z-score and a relative "
                   "threshold); exit 8 on a regression.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from plugins import ci_report
        from plugins.history import LOOKBACK, Z_THRESHOLD

        parser.add_argument("words", nargs="*", metavar="ACTION/TASK/DIR", help=USAGE)
        parser.add_argument("--metric", help="only this metric")
        parser.add_argument("--since", help="only values since WHEN: a date (2026-12-01), a "
                            "time (2026-12-01T12:00) or an age (30m, 12h, 7d), UTC")
        add_database_options(parser)
        parser.add_argument("--lookback", type=int, default=LOOKBACK, help="check: earlier "
                            f"points each latest value is judged against (default {LOOKBACK})")
        parser.add_argument("--z", type=float, default=Z_THRESHOLD, dest="z_threshold",
                            help=f"check: noise units a regression must exceed (default "
                            f"{Z_THRESHOLD:g})")
        parser.add_argument("--threshold", default="5%", metavar="LIMIT", help="check: "
                            "allowed worsening, 5%% (relative) or 0.01 (absolute); default 5%%")
        parser.add_argument("--direction", action="append", default=[],
                            metavar="METRIC=higher|lower", help="check: which way is better")
        ci_report.bench_driver_addoption("compare", parser)  # --junit, --markdown, as compare

    def run(self, args: argparse.Namespace, plugins: Plugins) -> int:
        from plugins.history.actions import check, import_dirs, show

        words = list(args.words)
        action = words.pop(0) if words and words[0] in ACTIONS else "show"
        if action == "import":
            return import_dirs(database(args), words)
        if len(words) > 1:
            raise ConfigError(f"history: expected at most one TASK, got {' '.join(words)!r}; "
                              f"usage: {USAGE}")
        task = words[0] if words else None
        if action == "check":
            return check(args, plugins, task)
        return show(args, task)
