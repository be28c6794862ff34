"""Prints a run's summary (status, each metric, memory peaks, why a run is incomplete), the
statistics table of a set, and an experiment's pivot (a row per variant, a column per metric).

Plain text when the stream is not a terminal (CI logs), rich tables when it is, which never cut
a name (:mod:`driver.experiments.tables`). The runs of an experiment are not reported one by one
(its progress line says how far it is) unless ``--verbose``, which also gives the full
statistics table instead of the pivot. Text that comes from the task or the config (names, log
excerpts, errors) is rich Text: it is never read as markup.
"""

from __future__ import annotations

import sys
from pathlib import Path
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
        if settings.in_set and settings.option("experiment") and not settings.option("verbose"):
            return  # an experiment shows one progress line, and its table at the end
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
        if settings.option("verbose"):
            print_table(summaries, settings.stream)
        else:
            print_pivot(experiment, summaries, settings.stream)

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
        from rich.text import Text

        from driver.experiments.tables import print_table

        title = Text.assemble(record.task, ": ", (record.status, "green" if record.status == OK
                                                 else "red"),
                              f" (exit code {record.exit_code}, {record.duration_s:.2f} s)")
        console = Console(file=stream)
        print_table(console, ("metric", "value", "from", "note"), self._rows(record), keys=1,
                    right=(1,), title=title)
        for error in _problems(record):
            console.print(Text.assemble(("!", "red"), " ", error))
        console.print(Text(f"run directory: {record.run_dir}"))


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

    from driver.experiments.tables import print_table

    headers = ("set", "metric", *STAT_COLUMNS, "outliers")
    rows = [(row["label"], row["metric"], *(fmt(row[k]) for k in STAT_COLUMNS), row["outliers"])
            for row in found]
    print_table(Console(file=stream), headers, rows, keys=2,
                right=range(2, 2 + len(STAT_COLUMNS)),
                title=f"value reported: {summaries[0].statistic if summaries else ''}")


def _plain_table(found: list[dict[str, Any]], stream: TextIO) -> None:
    wide = max([3] + [len(r["label"]) for r in found])
    name = max([6] + [len(r["metric"]) for r in found])
    print(f"{'set':<{wide}}  {'metric':<{name}} " + " ".join(f"{c:>11}" for c in STAT_COLUMNS),
          file=stream)
    for row in found:
        print(f"{row['label']:<{wide}}  {row['metric']:<{name}} " +
              " ".join(f"{fmt(row[c]):>11}" for c in STAT_COLUMNS) +
              (f"  outliers: {row['outliers']}" if row["outliers"] else ""), file=stream)


def pivot(summaries: Sequence[SetSummary]) -> tuple[list[str], list[list[str]], int]:
    """An experiment as one row per variant (its matrix values) and one column per metric: the
    reported statistic, and the relative standard deviation over the repetitions (``±2.1%``).
    Returns the headers, the rows and how many leading columns name the variant."""
    keys = list(dict.fromkeys(k for s in summaries for k in s.values)) or ["variant"]
    metrics = list(dict.fromkeys(m for s in summaries for m in s.metrics))
    rows = []
    for s in summaries:
        named = [str(s.values.get(k, "")) for k in keys] if s.values else [s.variant or ""]
        rows.append(named + [_cell(s.metrics[m], s.statistic) if m in s.metrics else ""
                             for m in metrics])
    return keys + metrics, rows, len(keys)


def _cell(metric: Any, statistic: str) -> str:
    value = metric.statistic(statistic)
    if value is None:
        return "-"
    spread = metric.std is not None and metric.n > 1 and metric.mean
    return f"{fmt(value)} ±{abs(metric.std / metric.mean) * 100:.1f}%" if spread else fmt(value)


def _noise(summaries: Sequence[SetSummary]) -> list[str]:
    """The machine's noise over the whole experiment: per check, in how many runs (its first
    warning), instead of a line per variant."""
    seen: dict[str, list[str]] = {}
    for s in summaries:
        for r in s.runs:
            for check, warning in {w.split(":")[0]: w for w in r.warnings}.items():
                seen.setdefault(check, []).append(warning)
    runs = sum(len(s.runs) for s in summaries)
    return [f"noisy machine in {len(found)} of {runs} run(s): {found[0]}"
            for found in seen.values()]


def print_pivot(experiment: ExperimentIndex, summaries: Sequence[SetSummary],
                stream: TextIO | None = None) -> None:
    """The compact table of an experiment (:func:`pivot`), its problems and where the full
    statistics are."""
    from driver.experiments.summary import problem_lines
    from driver.experiments.tables import print_plain

    stream = stream or sys.stderr
    headers, rows, keys = pivot(summaries)
    statistic = summaries[0].statistic if summaries else "median"
    title = f"{experiment.experiment}: {statistic} per variant (± std/mean over the repetitions)"
    if stream.isatty():
        from rich.console import Console

        from driver.experiments.tables import print_table as print_rich

        print_rich(Console(file=stream), headers, rows, keys, range(keys, len(headers)), title)
    else:
        print(title, file=stream)
        print_plain(stream, headers, rows, range(keys, len(headers)))
    for line in problem_lines(summaries):
        print(f"  ! {line}", file=stream)
    for line in _noise(summaries):
        print(f"  ~ {line}", file=stream)
    print(f"full statistics: {Path(experiment.directory) / 'summary.md'} (and summary.csv)",
          file=stream)


@hookimpl
def bench_driver_register_reporters() -> dict[str, object]:
    return {"console": ConsoleReporter()}
