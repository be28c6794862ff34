"""Prints a run's summary: status, each metric, memory peaks, and why a run is incomplete.

Plain text when the stream is not a terminal (CI logs), a rich table when it is.
"""

from __future__ import annotations

import sys
from typing import TextIO

from driver.hookspecs import hookimpl
from driver.report import ReportSettings
from driver.results import RunRecord


def _value(value: float | None) -> str:
    return "NOT FOUND" if value is None else f"{value:.6g}"


class ConsoleReporter:
    """Writes to ``settings.stream`` (stderr by default, so stdout stays the command's output)."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        stream = settings.stream or sys.stderr
        if stream.isatty():
            self._rich(record, stream)
        else:
            self._plain(record, stream)

    def _rows(self, record: RunRecord) -> list[tuple[str, str, str, str]]:
        rows = []
        for m in record.metrics:
            note = "optional" if m.optional and m.missing else ""
            if m.nonfinite:
                note += f" {m.nonfinite} nan/inf skipped"
            if m.unparsed:
                note += f" {m.unparsed} unparsed e.g. {m.unparsed_examples[0]!r}"
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
        for error in record.errors:
            print(f"  ! {error}", file=stream)
        print(f"  run directory: {record.run_dir}", file=stream)

    def _rich(self, record: RunRecord, stream: TextIO) -> None:
        from rich.console import Console
        from rich.table import Table

        style = "green" if record.status == "ok" else "red"
        table = Table(title=f"{record.task}: [{style}]{record.status}[/] "
                      f"(exit code {record.exit_code}, {record.duration_s:.2f} s)")
        for column in ("metric", "value", "from", "note"):
            table.add_column(column, justify="right" if column == "value" else "left")
        for row in self._rows(record):
            table.add_row(*row)
        console = Console(file=stream)
        console.print(table)
        for error in record.errors:
            console.print(f"[red]![/] {error}")
        console.print(f"run directory: {record.run_dir}")


@hookimpl
def bench_driver_register_reporters() -> dict[str, object]:
    return {"console": ConsoleReporter()}
