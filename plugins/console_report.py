"""Prints a run's summary (status, each metric, memory peaks, why a run is incomplete), and the
statistics table of a set or an experiment.

Plain text when the stream is not a terminal (CI logs), a rich table when it is. Text that comes
from the task or the config (names, log excerpts, errors) is escaped: it is never rich markup.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Sequence, TextIO

from driver.hookspecs import hookimpl
from driver.report import STAT_COLUMNS, Reporter, ReportSettings, fmt
from driver.results import OK, RunRecord

if TYPE_CHECKING:
    from driver.experiments.summary import ExperimentIndex, SetSummary


def _value(value: float | None) -> str:
    return "NOT FOUND" if value is None else f"{value:.6g}"


class ConsoleReporter(Reporter):
    """Writes to ``settings.stream`` (stderr by default, so stdout stays the command's output)."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        stream = settings.stream or sys.stderr
        if stream.isatty():
            self._rich(record, stream)
        else:
            self._plain(record, stream)

    def report_set(self, summary: SetSummary, settings: ReportSettings) -> None:
        if summary.experiment is None:  # an experiment's variants are shown together at its end
            print_table([summary], settings.stream)

    def report_experiment(self, experiment: ExperimentIndex, summaries: Sequence[SetSummary],
                          settings: ReportSettings) -> None:
        print_table(summaries, settings.stream)

    def _rows(self, record: RunRecord) -> list[tuple[str, str, str, str]]:
        rows = []
        for m in record.metrics:
            note = "optional" if m.optional and m.missing else ""
            if m.nonfinite:
                note += f" {m.nonfinite} nan/inf skipped"
            if m.unparsed:
                note += f" {m.unparsed} unparsed e.g. {m.unparsed_examples[0]!r}"
            if m.error:
                note += f" {m.error.split(':')[0]}"
            unit = f" {m.unit}" if m.unit else ""
            rows.append((m.name, _value(m.value) + unit, f"{m.compute_method} of {m.values}",
                         note.strip()))
        for name, value in record.resource_metrics.items():
            rows.append((name, f"{value:.6g} MiB" if "memory" in name else f"{value:.6g}",
                         "sampled", ""))
        return rows

    def _plain(self, record: RunRecord, stream: TextIO) -> None:
        print(f"bench-driver: {record.task}: {record.status} "
              f"(exit code {record.exit_code}, {record.duration_s:.2f} s)", file=stream)
        for name, value, how, note in self._rows(record):
            print(f"  {name:<28} {value:>16}  {how}{'  ' + note if note else ''}", file=stream)
        for error in _problems(record):
            print(f"  ! {error}", file=stream)
        print(f"  run directory: {record.run_dir}", file=stream)

    def _rich(self, record: RunRecord, stream: TextIO) -> None:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        style = "green" if record.status == OK else "red"
        table = Table(title=f"{escape(record.task)}: [{style}]{record.status}[/] "
                      f"(exit code {record.exit_code}, {record.duration_s:.2f} s)")
        for column in ("metric", "value", "from", "note"):
            table.add_column(column, justify="right" if column == "value" else "left",
                             overflow="fold")
        for row in self._rows(record):
            table.add_row(*(escape(cell) for cell in row))
        console = Console(file=stream)
        console.print(table)
        for error in _problems(record):
            console.print(f"[red]![/] {escape(error)}")
        console.print(f"run directory: {escape(record.run_dir)}")


def _problems(record: RunRecord) -> list[str]:
    return [*record.errors, *(f"plugin error: {e}" for e in record.plugin_errors),
            *(f"not written: {e}" for e in record.storage_errors)]


def print_table(summaries: Sequence[SetSummary], stream: TextIO | None = None) -> None:
    """The statistics of sets on *stream* (stderr by default): rich on a terminal, plain text
    otherwise; names are never cut."""
    from driver.experiments.summary import noise_lines, problem_lines, summary_rows

    stream = stream or sys.stderr
    found = summary_rows(summaries)
    if stream.isatty():
        _rich_table(summaries, found, stream)
    else:
        _plain_table(found, stream)
    for line in problem_lines(summaries):
        print(f"  ! {line}", file=stream)
    for line in noise_lines(summaries):
        print(f"  ~ {line}", file=stream)


def _rich_table(summaries: Sequence[SetSummary], found: list[dict[str, Any]],
                stream: TextIO) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"value reported: {summaries[0].statistic if summaries else ''}")
    for column in ("set", "metric", *STAT_COLUMNS, "outliers"):
        table.add_column(column, justify="right" if column in STAT_COLUMNS else "left",
                         overflow="fold")
    for row in found:
        table.add_row(escape(row["label"]), escape(row["metric"]),
                      *(fmt(row[k]) for k in STAT_COLUMNS), row["outliers"])
    Console(file=stream).print(table)


def _plain_table(found: list[dict[str, Any]], stream: TextIO) -> None:
    wide = max([3] + [len(r["label"]) for r in found])
    name = max([6] + [len(r["metric"]) for r in found])
    print(f"{'set':<{wide}}  {'metric':<{name}} " + " ".join(f"{c:>11}" for c in STAT_COLUMNS),
          file=stream)
    for row in found:
        print(f"{row['label']:<{wide}}  {row['metric']:<{name}} " +
              " ".join(f"{fmt(row[c]):>11}" for c in STAT_COLUMNS) +
              (f"  outliers: {row['outliers']}" if row["outliers"] else ""), file=stream)


@hookimpl
def bench_driver_register_reporters() -> dict[str, object]:
    return {"console": ConsoleReporter()}
