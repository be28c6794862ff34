"""What runs, sets, experiments and ``compare`` hand to CI: a built-in reporter plugin (as
pytest's junitxml is), owning the ``--junit`` and ``--markdown`` options.

* A summary table as Markdown (``summary.md``, ``--markdown PATH``) and as CSV (``summary.csv``),
  one row per set (or experiment variant) and metric, in the set's or experiment's directory.
* JUnit XML (``--junit PATH``): a ``testsuite`` per set; a ``testcase`` per run (a run that is not
  ``ok`` fails) and per metric (a required metric missing from a measured repetition fails; an
  optional one that never matched is skipped). ``compare`` gives a testcase per metric (a
  regression or a metric missing from NEW fails).
* When ``$GITHUB_STEP_SUMMARY`` is set, the Markdown is appended to that file too (for a single run
  only with ``--markdown``).

Every file is written atomically. ``--junit`` and ``--markdown`` are checked before anything runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from driver.hookspecs import hookimpl
from driver.paths import check_writable
from driver.records import Record
from driver.report import STAT_COLUMNS, Reporter, ReportSettings, fmt
from driver.results import OK, write_text_atomic

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

    from driver.config import TaskConfig
    from driver.experiments.compare import Comparison, Verdict
    from driver.experiments.summary import ExperimentIndex, MetricSummary, SetRun, SetSummary
    from driver.results import RunRecord

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
CSV_COLUMNS = ("experiment", "variant", "task", "metric", "statistic", "value") + STAT_COLUMNS + \
    ("outliers", "missing", "unit", "direction", "runs_ok", "runs")


class JUnitCase(Record):
    """One JUnit testcase: a failure message, a skip message, or neither (passed)."""

    name: str
    time_s: float = 0.0
    failure: str | None = None
    skipped: str | None = None
    detail: str = ""


def csv_text(summaries: Sequence[SetSummary]) -> str:
    """The summary as CSV, one row per set and metric (numbers unrounded)."""
    import csv
    import io

    from driver.experiments.summary import summary_rows

    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in summary_rows(summaries):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def markdown_text(summaries: Sequence[SetSummary], title: str) -> str:
    """The summary as a Markdown section: a table and the runs that were not ok."""
    from driver.experiments.summary import problem_lines, summary_rows

    statistic = summaries[0].statistic if summaries else "median"
    head = ["set", "metric", *STAT_COLUMNS, "outliers (repetition)"]
    lines = [f"### {title}", "", f"Reported value: the **{statistic}** over repetitions.", "",
             "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(STAT_COLUMNS) + "---|"]
    for row in summary_rows(summaries):
        cells = [row["label"], row["metric"], *(fmt(row[k]) for k in STAT_COLUMNS),
                 row["outliers"] or "-"]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    problems = problem_lines(summaries)
    if problems:
        lines += ["", "Runs that were not ok:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def set_cases(summary: SetSummary) -> list[JUnitCase]:
    """The testcases of one set: one per run, one per metric."""
    cases = [_run_case(r) for r in summary.runs]
    return cases + [_metric_case(name, m) for name, m in summary.metrics.items()]


def _run_case(r: SetRun) -> JUnitCase:
    failure = None if r.status == OK else \
        f"{r.status} (exit code {r.exit_code}): " + "; ".join(r.errors)
    return JUnitCase(f"{r.kind} {r.index} (seed {r.seed})", float(r.duration_s or 0.0), failure,
                     detail=f"run directory: {r.run_dir}")


def _metric_case(name: str, m: MetricSummary) -> JUnitCase:
    detail = ", ".join(f"{k}={fmt(getattr(m, k))}" for k in STAT_COLUMNS)
    if m.optional is False and (m.missing or not m.n):
        return JUnitCase(f"metric {name}", failure=f"required metric {name!r} missing from "
                         f"{m.missing} measured repetition(s) ({m.n} had it)", detail=detail)
    if m.error and m.optional is False:
        return JUnitCase(f"metric {name}", failure=f"metric {name!r}: {m.error}", detail=detail)
    if not m.n:
        return JUnitCase(f"metric {name}", skipped=f"optional metric {name!r} never matched")
    return JUnitCase(f"metric {name}", detail=detail)


def junit_xml(suites: Sequence[tuple[str, Sequence[JUnitCase]]]) -> str:
    """A JUnit XML document (``testsuites`` > ``testsuite`` > ``testcase``)."""
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites", name="bench-driver")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for suite_name, cases in suites:
        suite = ET.SubElement(root, "testsuite", name=suite_name)
        counts = {"tests": len(cases), "failures": sum(c.failure is not None for c in cases),
                  "skipped": sum(c.skipped is not None for c in cases)}
        for case in cases:
            _add_case(suite, suite_name, case)
        suite.attrib.update({k: str(v) for k, v in counts.items()}, errors="0",
                            time=f"{sum(c.time_s for c in cases):.3f}")
        for key, value in counts.items():
            totals[key] += value
    root.attrib.update({k: str(v) for k, v in totals.items()}, errors="0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _add_case(suite: ET.Element, classname: str, case: JUnitCase) -> None:
    import xml.etree.ElementTree as ET

    element = ET.SubElement(suite, "testcase", classname=classname, name=case.name,
                            time=f"{case.time_s:.3f}")
    if case.failure is not None:
        ET.SubElement(element, "failure", message=case.failure[:500],
                      type="failure").text = case.failure
    elif case.skipped is not None:
        ET.SubElement(element, "skipped", message=case.skipped)
    if case.detail:
        ET.SubElement(element, "system-out").text = case.detail


def append_step_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> None:
    """Append *markdown* to ``$GITHUB_STEP_SUMMARY`` when it is set (GitHub Actions)."""
    path = environ.get(STEP_SUMMARY_ENV)
    if path:
        from driver.errors import StorageError

        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(markdown + "\n")
        except OSError as exc:
            raise StorageError(f"{path} (${STEP_SUMMARY_ENV}): cannot append: "
                               f"{exc.strerror or exc}") from exc


def markdown_comparison(comparison: Comparison) -> str:
    """A comparison's table as a Markdown section."""
    from driver.experiments.compare import TABLE_HEAD, table_rows

    lines = [f"### {comparison.title}", "", "| " + " | ".join(TABLE_HEAD) + " |",
             "|" + "---|" * len(TABLE_HEAD)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |"
              for row in table_rows(comparison.verdicts)]
    failed = sum(v.failed for v in comparison.verdicts)
    lines += ["", f"**{failed} failure(s)**" if failed else "No regression."]
    return "\n".join(lines) + "\n"


def comparison_cases(verdicts: Sequence[Verdict]) -> list[JUnitCase]:
    """A JUnit testcase per key: regressions and missing metrics fail, unchecked ones skip."""
    from driver.experiments.compare import TABLE_HEAD, UNCHECKED, table_rows

    cases = []
    for v, row in zip(verdicts, table_rows(verdicts)):
        detail = ", ".join(f"{h}={c}" for h, c in zip(TABLE_HEAD[1:], row[1:]))
        cases.append(JUnitCase(
            v.key, failure=f"{v.verdict}: {detail}" if v.failed else None,
            skipped="no direction: pass --direction METRIC=higher|lower"
            if v.verdict == UNCHECKED else None, detail=detail))
    return cases


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


class CiReport(Reporter):
    """Writes the tables, ``--junit``, ``--markdown`` and the GitHub step summary."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        junit, markdown = settings.option("junit"), settings.option("markdown")
        if settings.in_set or (junit is None and markdown is None):
            return
        summary = _single_run_set(record, settings)
        self._publish([summary], f"bench-driver: {record.task}", settings,
                      step_summary=markdown is not None)

    def report_set(self, summary: SetSummary, settings: ReportSettings) -> None:
        _write_tables(Path(summary.directory), [summary])
        if summary.experiment is None:
            self._publish([summary], f"bench-driver: {summary.task}", settings)

    def report_experiment(self, experiment: ExperimentIndex, summaries: Sequence[SetSummary],
                          settings: ReportSettings) -> None:
        found = experiment.summaries()  # every variant so far, also those not run this time
        _write_tables(Path(experiment.directory), found)
        self._publish(found, f"bench-driver: experiment {experiment.experiment}", settings)

    def report_comparison(self, comparison: Comparison, settings: ReportSettings) -> None:
        text = markdown_comparison(comparison)
        junit, markdown = settings.option("junit"), settings.option("markdown")
        if junit is not None:
            write_text_atomic(junit, junit_xml([("compare", comparison_cases(
                comparison.verdicts))]))
        if markdown is not None:
            write_text_atomic(markdown, text)
        append_step_summary(text)

    def _publish(self, summaries: Sequence[SetSummary], title: str, settings: ReportSettings,
                 step_summary: bool = True) -> None:
        text = markdown_text(summaries, title)
        junit, markdown = settings.option("junit"), settings.option("markdown")
        if junit is not None:
            write_text_atomic(junit, junit_xml([(s.label, set_cases(s)) for s in summaries]))
        if markdown is not None:
            write_text_atomic(markdown, text)
        if step_summary:
            append_step_summary(text)


def _write_tables(directory: Path, summaries: Sequence[SetSummary]) -> None:
    """``summary.md`` and ``summary.csv`` in *directory*."""
    write_text_atomic(directory / "summary.md",
                      markdown_text(summaries, f"bench-driver: {directory.name}"))
    write_text_atomic(directory / "summary.csv", csv_text(summaries))


def _single_run_set(record: RunRecord, settings: ReportSettings) -> SetSummary:
    """A single run as a set of one repetition, for its JUnit and Markdown."""
    from driver.experiments.summary import SetRun, SetSummary, record_metas

    seed = int(settings.option("seed", 0) or 0)
    header = SetSummary(record.task, 1, 0, seed, "median", (), {}, directory=record.run_dir)
    return SetSummary.build(header, [SetRun.of("repetition", 0, seed, record, False)],
                            record_metas(record))


@hookimpl
def bench_driver_addoption(command: str, parser: argparse.ArgumentParser) -> None:
    if command not in ("run", "compare"):
        return
    what = "the comparison" if command == "compare" else "the result"
    parser.add_argument("--junit", type=Path, metavar="PATH", help=f"also write {what} as "
                        f"JUnit XML here")
    parser.add_argument("--markdown", type=Path, metavar="PATH",
                        help=f"also write {what} as a Markdown summary here")


@hookimpl
def bench_driver_configure(options: argparse.Namespace, config: TaskConfig | None) -> None:
    for flag in ("junit", "markdown"):
        path = getattr(options, flag, None)
        if path is not None:
            check_writable(path, f"--{flag}")


@hookimpl
def bench_driver_register_reporters() -> dict[str, Any]:
    return {"ci": CiReport()}
