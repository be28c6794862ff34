"""``bench-driver history``: show the values over time and commit, import old results, check the
latest values against their history (exit 8 on a regression, with compare's CI outputs)."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from driver.commands import Command
from driver.errors import ConfigError, ExitCode
from driver.experiments.compare import Comparison

if TYPE_CHECKING:
    from driver.plugins import Plugins
    from plugins.history.store import History, Point

ACTIONS = ("import", "check")
USAGE = ("bench-driver history [TASK] | history import DIR... | history check [TASK]")
HEAD = ("started", "commit", "series", "value", "spread", "n", "host")


@dataclass(frozen=True)
class HistoryComparison(Comparison):
    """``history check``'s verdicts, as reporters receive a comparison (JUnit, Markdown)."""

    @property
    def title(self) -> str:
        return f"bench-driver history check: {self.baseline}"


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """``--db`` / ``--runs-dir``: which history a reading command opens."""
    parser.add_argument("--db", type=Path, metavar="PATH",
                        help="the history database (default: RUNS_DIR/history.sqlite)")
    parser.add_argument("--runs-dir", type=Path, default=Path("bench-runs"),
                        help="where the runs went (default: ./bench-runs)")


def database(args: argparse.Namespace) -> Path:
    """The history file *args* name."""
    return Path(args.db) if args.db else Path(args.runs_dir) / "history.sqlite"


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
        from plugins.history.check import LOOKBACK, Z_THRESHOLD

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


def import_dirs(path: Path, dirs: Sequence[str]) -> int:
    """``history import DIR...``."""
    from plugins.history.importer import import_directory
    from plugins.history.store import open_history

    if not dirs:
        raise ConfigError(f"history import: name the directories to import; usage: {USAGE}")
    with open_history(path) as history:
        for directory in dirs:
            done = import_directory(history, Path(directory))
            print(f"{directory}: {done.runs} run(s), {done.sets} set(s), {done.experiments} "
                  f"experiment(s), {done.flat} flat result file(s) imported into {path}"
                  + (f"; {done.skipped} other JSON file(s) skipped" if done.skipped else ""))
    return ExitCode.OK


def _points(args: argparse.Namespace, history: History, task: str | None) -> list[Point]:
    points = history.points(task, args.metric, since_iso(args.since))
    if not points:
        known = sorted({p.label for p in history.points()})
        from driver.errors import did_you_mean

        hint = did_you_mean(task, known) if task else ""
        raise ConfigError(f"{history.path}: no values for {task or 'any task'!s}"
                          f"{' metric ' + repr(args.metric) if args.metric else ''}"
                          f"{' since ' + args.since if args.since else ''}{hint}; recorded: "
                          f"{', '.join(known) or 'nothing yet'}")
    return points


def show(args: argparse.Namespace, task: str | None) -> int:
    """``history [TASK]``: one line per value, oldest first, names never cut."""
    from driver.report import fmt
    from plugins.history.store import open_history

    with open_history(database(args), create=False) as history:
        points = _points(args, history, task)
    rows = [HEAD] + [(p.started_at, short_commit(p.git_commit), p.key, fmt(p.value),
                      f"{fmt(p.low)}..{fmt(p.high)}" if p.n > 1 else "-", str(p.n),
                      p.host or "-") for p in points]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEAD))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return ExitCode.OK


def check(args: argparse.Namespace, plugins: Plugins, task: str | None) -> int:
    """``history check [TASK]``: the latest value of each series against its history."""
    from driver.experiments.compare import parse_directions, parse_thresholds, print_comparison
    from driver.report import ReportSettings, publish
    from plugins.history.check import CheckOptions, check_latest
    from plugins.history.store import open_history

    if args.lookback < 2 or not args.z_threshold > 0:
        raise ConfigError(f"history check: --lookback {args.lookback} must be >= 2 and --z "
                          f"{args.z_threshold} > 0")
    options = CheckOptions(parse_thresholds([args.threshold])[""], args.lookback,
                           z_threshold=args.z_threshold,
                           directions=parse_directions(args.direction))
    path = database(args)
    with open_history(path, create=False) as history:
        verdicts = check_latest(_points(args, history, task), options)
    comparison = HistoryComparison(path, Path("latest"), tuple(verdicts))
    print_comparison(comparison.verdicts)
    for failure in publish(plugins, "report_comparison", comparison, ReportSettings(args)):
        print(f"bench-driver: warning: {failure}", file=sys.stderr)
    return ExitCode.REGRESSION if comparison.failed else ExitCode.OK


def short_commit(commit: str | None) -> str:
    """A commit as git abbreviates it (12 digits), keeping ``-dirty``; ``-`` when unknown."""
    if not commit:
        return "-"
    sha, dirty, _ = commit.partition("-dirty")
    return sha[:12] + ("-dirty" if dirty else "")


def since_iso(text: str | None, now: datetime | None = None) -> str | None:
    """``--since`` as the ISO time records are compared with (UTC)."""
    if text is None:
        return None
    age = re.fullmatch(r"(\d+(?:\.\d+)?)([mhd])", text.strip())
    if age:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[age.group(2)]
        when = (now or datetime.now(timezone.utc)) - timedelta(**{unit: float(age.group(1))})
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ConfigError(f"--since {text!r}: expected a date like 2026-12-01, a time like "
                              f"2026-12-01T12:00 or an age like 30m, 12h, 7d") from None
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")
