"""``bench-driver report [-o DIR]``: the history as one self-contained static HTML page
(plugins.html_report.page; docs/history.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver.commands import Command
from driver.errors import ExitCode
from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.plugins import Plugins


class ReportCommand(Command):
    """``bench-driver report``."""

    help = "write the history as a static HTML report (RUNS_DIR/report/index.html)"
    description = ("Write a self-contained HTML page (no network needed) from the history: "
                   "values over commits and time per task and metric with the repetitions' "
                   "spread and regressions marked, the last run's memory timeline, experiment "
                   "pivots, NAS anytime curves and Pareto fronts.")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from plugins.history import LOOKBACK, Z_THRESHOLD
        from plugins.history.command import add_database_options

        parser.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                            help="where index.html goes (default: RUNS_DIR/report)")
        add_database_options(parser)
        parser.add_argument("--lookback", type=int, default=LOOKBACK,
                            help=f"regression marks: earlier points judged against "
                            f"(default {LOOKBACK})")
        parser.add_argument("--z", type=float, default=Z_THRESHOLD, dest="z_threshold",
                            help=f"regression marks: noise units (default {Z_THRESHOLD:g})")
        parser.add_argument("--threshold", default="5%", metavar="LIMIT",
                            help="regression marks: allowed worsening (default 5%%)")

    def run(self, args: argparse.Namespace, plugins: Plugins) -> int:
        from plugins.history.command import check_options, database
        from plugins.history.rows import now_iso
        from plugins.history.store import open_history
        from plugins.html_report.page import write_report

        options = check_options(args, "report")
        out_dir = args.output_dir or Path(args.runs_dir) / "report"
        with open_history(database(args), create=False) as history:
            path = write_report(history, options, out_dir, now_iso())
        print(f"bench-driver: report: {path}")
        return ExitCode.OK


@hookimpl
def bench_driver_register_commands() -> dict[str, Any]:
    return {"report": ReportCommand()}
