"""The actions of ``bench-driver history``: show, import, check (plugins.history.command)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from driver.errors import ConfigError, ExitCode
from plugins.history.command import HEAD, USAGE, database

if TYPE_CHECKING:
    from driver.plugins import Plugins
    from plugins.history.rows import Point
    from plugins.history.store import History


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
    from driver.experiments.tables import print_plain
    from driver.report import fmt
    from plugins.history.store import open_history

    with open_history(database(args), create=False) as history:
        points = _points(args, history, task)
    rows = [(p.started_at, short_commit(p.git_commit), p.key, fmt(p.value),
             f"{fmt(p.low)}..{fmt(p.high)}" if p.n > 1 else "-", str(p.n), p.host or "-")
            for p in points]
    print_plain(sys.stdout, HEAD, rows)
    return ExitCode.OK


def check(args: argparse.Namespace, plugins: Plugins, task: str | None) -> int:
    """``history check [TASK]``: the latest value of each series against its history."""
    from driver.experiments.compare import print_comparison
    from driver.report import ReportSettings, publish
    from plugins.history.check import HistoryComparison, check_latest
    from plugins.history.command import check_options
    from plugins.history.store import open_history

    options = check_options(args, "history check")
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
