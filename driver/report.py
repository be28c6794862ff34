"""The reporter interface, and handing results to every reporter plugin through the guard.

A reporter presents results: the flat JSON file, the console summary, JUnit/Markdown/CSV for CI,
a plot. Only :meth:`Reporter.report` is required; the other methods do nothing by default
(Optuna-style), so a reporter that cares only about single runs stays a few lines long. One
failing reporter never stops the others: :func:`publish` collects their errors.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

from driver.errors import BenchDriverError, PluginError
from driver.records import Record

if TYPE_CHECKING:
    from driver.experiments.compare import Comparison
    from driver.experiments.summary import ExperimentIndex, SetSummary
    from driver.plugins import Plugins
    from driver.results import RunRecord


#: The statistics columns of the summary tables of sets (console, Markdown, CSV).
STAT_COLUMNS: tuple[str, ...] = ("n", "median", "mean", "std", "min", "max")


class ReportSettings(Record):
    """What reporters are told besides the result."""

    options: argparse.Namespace = argparse.Namespace()  # the command line
    framework: str | None = None  # the task's ``framework`` key (--framework overrides it)
    stream: TextIO | None = None  # where console reporters write (stderr by default)
    in_set: bool = False  # the run is one of a set: per-run files go into its run directory

    def option(self, name: str, default: Any = None) -> Any:
        """The value of a command-line option (*default* when the command has no such option)."""
        return getattr(self.options, name, default)


class Reporter:
    """Presents finished runs, sets, experiments and comparisons. Subclass it, or provide at
    least ``report(record, settings)``: the other methods are optional."""

    def begin(self, settings: ReportSettings) -> None:
        """Called once after validation, before the first command starts (e.g. to remove a
        previous result that must not survive a failed run)."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        """Called after each run, failed and interrupted ones included."""

    def report_set(self, summary: SetSummary, settings: ReportSettings) -> None:
        """Called after a set of repeated runs (``--repetitions``, an experiment's variant)."""

    def report_experiment(self, experiment: ExperimentIndex, summaries: Sequence[SetSummary],
                          settings: ReportSettings) -> None:
        """Called once after an experiment (or what of it ran before an interruption)."""

    def report_comparison(self, comparison: Comparison, settings: ReportSettings) -> None:
        """Called after ``compare`` with every verdict."""


def fmt(value: Any) -> str:
    """A number as tables show it: 6 significant digits, ``-`` when there is none."""
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def begin_once(plugins: Plugins, settings: ReportSettings) -> Callable[[], None]:
    """A callable that tells every reporter ``begin(settings)`` the first time it is called
    (just before the first command starts); a reporter failing there stops the run (exit 7)."""
    begun: list[bool] = []

    def begin() -> None:
        if not begun:
            begun.append(True)
            for _, reporter in plugins.items("reporters"):
                if reporter.has("begin"):
                    reporter.begin(settings)

    return begin


def publish(plugins: Plugins, method: str, *args: Any) -> list[BenchDriverError]:
    """Call ``method(*args)`` of every reporter that has it; return the errors (plugin errors,
    files that could not be written) instead of raising, so that every reporter runs."""
    errors: list[BenchDriverError] = []
    for _, reporter in plugins.items("reporters"):
        if not reporter.has(method):
            if method == "report":  # the one method a reporter must have
                errors.append(PluginError(f"{reporter.origin}: a reporter needs a "
                                          f"report(record, settings) method"))
            continue
        try:
            getattr(reporter, method)(*args)
        except BenchDriverError as exc:
            errors.append(exc)
    return errors
