"""What repeated runs, experiments and ``compare`` hand to people and CI.

* A summary table: on the console (a rich table on a terminal, plain text otherwise), as
  Markdown (``summary.md``, ``--markdown PATH``) and as CSV (``summary.csv``), one row per
  set (or experiment variant) and metric.
* JUnit XML (``--junit PATH``): a ``testsuite`` per set; a ``testcase`` per run (a run that is not
  ``ok`` fails) and per metric (a required metric missing from a measured repetition fails; an
  optional one that never matched is skipped). ``compare`` gives a testcase per metric (a
  regression or a metric missing from NEW fails).
* When ``$GITHUB_STEP_SUMMARY`` is set, the Markdown is appended to that file too.

Every file is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import csv
import io
import os
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

from driver.results import write_text_atomic

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
STAT_COLUMNS = ("n", "median", "mean", "std", "min", "max")
CSV_COLUMNS = ("experiment", "variant", "task", "metric", "statistic", "value") + STAT_COLUMNS + \
    ("outliers", "missing", "unit", "direction", "runs_ok", "runs")


@dataclass(frozen=True)
class JUnitCase:
    """One JUnit testcase: a failure message, a skip message, or neither (passed)."""

    name: str
    time_s: float = 0.0
    failure: str | None = None
    skipped: str | None = None
    detail: str = ""


def set_label(summary: Mapping[str, Any]) -> str:
    """``experiment/variant`` for an experiment's set, else the task name."""
    if summary.get("experiment"):
        return f"{summary['experiment']}/{summary['variant']}"
    return str(summary["task"])


def fmt(value: Any) -> str:
    """A number as shown in tables: 6 significant digits, ``-`` when there is none."""
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def rows(summaries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per set and metric, with every column of :data:`CSV_COLUMNS`."""
    found = []
    for s in summaries:
        ok = sum(1 for r in s["runs"] if r["kind"] == "repetition" and r["status"] == "ok")
        for name, m in s["metrics"].items():
            found.append({
                "experiment": s.get("experiment") or "", "variant": s.get("variant") or "",
                "task": s["task"], "metric": name, "statistic": s["statistic"],
                "value": m.get(s["statistic"]), **{k: m.get(k) for k in STAT_COLUMNS},
                "outliers": " ".join(str(i) for i in m.get("outliers", [])),
                "missing": m.get("missing", 0), "unit": m.get("unit") or "",
                "direction": m.get("direction") or "", "runs_ok": ok,
                "runs": s["repetitions"], "label": set_label(s),
            })
    return found


def csv_text(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The summary as CSV, one row per set and metric (numbers unrounded)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows(summaries):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def markdown_text(summaries: Sequence[Mapping[str, Any]], title: str) -> str:
    """The summary as a Markdown section: a table and the runs that were not ok."""
    statistic = summaries[0]["statistic"] if summaries else "median"
    head = ["set", "metric", *STAT_COLUMNS, "outliers (repetition)"]
    lines = [f"### {title}", "", f"Reported value: the **{statistic}** over repetitions.", "",
             "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(STAT_COLUMNS) + "---|"]
    for row in rows(summaries):
        cells = [row["label"], row["metric"], *(fmt(row[k]) for k in STAT_COLUMNS),
                 row["outliers"] or "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    problems = problem_lines(summaries)
    if problems:
        lines += ["", "Runs that were not ok:", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def problem_lines(summaries: Sequence[Mapping[str, Any]]) -> list[str]:
    """``label kind index: status (first error)`` for every run that was not ok."""
    lines = []
    for s in summaries:
        for r in s["runs"]:
            if r["status"] != "ok":
                why = f" ({r['errors'][0]})" if r.get("errors") else ""
                lines.append(f"{set_label(s)} {r['kind']} {r['index']}: {r['status']}{why}")
        if not s.get("complete", True):
            lines.append(f"{set_label(s)}: incomplete; run it again to resume")
    return lines


def write_tables(directory: Path, summaries: Sequence[Mapping[str, Any]]) -> None:
    """``summary.md`` and ``summary.csv`` in *directory*."""
    title = f"bench-driver: {directory.name}"
    write_text_atomic(directory / "summary.md", markdown_text(summaries, title))
    write_text_atomic(directory / "summary.csv", csv_text(summaries))


def print_table(summaries: Sequence[Mapping[str, Any]], stream: TextIO | None = None) -> None:
    """The summary on *stream* (stderr by default): rich on a terminal, plain text otherwise."""
    stream = stream or sys.stderr
    found = rows(summaries)
    if stream.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"value reported: {summaries[0]['statistic'] if summaries else ''}")
        for column in ("set", "metric", *STAT_COLUMNS, "outliers"):
            table.add_column(column, justify="right" if column in STAT_COLUMNS else "left")
        for row in found:
            table.add_row(row["label"], row["metric"], *(fmt(row[k]) for k in STAT_COLUMNS),
                          row["outliers"])
        Console(file=stream).print(table)
    else:
        wide = max([3] + [len(r["label"]) for r in found])
        name = max([6] + [len(r["metric"]) for r in found])
        print(f"{'set':<{wide}}  {'metric':<{name}} " + " ".join(f"{c:>11}" for c in STAT_COLUMNS),
              file=stream)
        for row in found:
            print(f"{row['label']:<{wide}}  {row['metric']:<{name}} " +
                  " ".join(f"{fmt(row[c]):>11}" for c in STAT_COLUMNS) +
                  (f"  outliers: {row['outliers']}" if row["outliers"] else ""), file=stream)
    for line in problem_lines(summaries):
        print(f"  ! {line}", file=stream)


def set_cases(summary: Mapping[str, Any]) -> list[JUnitCase]:
    """The testcases of one set: one per run, one per metric."""
    cases = []
    for r in summary["runs"]:
        failure = None if r["status"] == "ok" else \
            f"{r['status']} (exit code {r['exit_code']}): " + "; ".join(r.get("errors", []))
        cases.append(JUnitCase(f"{r['kind']} {r['index']} (seed {r['seed']})",
                              float(r.get("duration_s") or 0.0), failure,
                              detail=f"run directory: {r['run_dir']}"))
    for name, m in summary["metrics"].items():
        cases.append(_metric_case(name, m))
    return cases


def _metric_case(name: str, m: Mapping[str, Any]) -> JUnitCase:
    detail = ", ".join(f"{k}={fmt(m.get(k))}" for k in STAT_COLUMNS)
    if m.get("optional") is False and (m.get("missing") or not m.get("n")):
        return JUnitCase(f"metric {name}", failure=f"required metric {name!r} missing from "
                        f"{m.get('missing', 0)} measured repetition(s) ({m.get('n', 0)} had it)",
                        detail=detail)
    if not m.get("n"):
        return JUnitCase(f"metric {name}", skipped=f"optional metric {name!r} never matched")
    return JUnitCase(f"metric {name}", detail=detail)


def junit_xml(suites: Sequence[tuple[str, Sequence[JUnitCase]]]) -> str:
    """A JUnit XML document (``testsuites`` > ``testsuite`` > ``testcase``)."""
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
        with open(path, "a", encoding="utf-8") as f:
            f.write(markdown + "\n")


def publish_sets(
    summaries: Sequence[Mapping[str, Any]],
    title: str,
    junit: Path | None = None,
    markdown: Path | None = None,
    console: bool = True,
    step_summary: bool = True,
) -> None:
    """Print the table; write ``--junit`` and ``--markdown``; append to the step summary."""
    if console:
        print_table(summaries)
    text = markdown_text(summaries, title)
    if junit is not None:
        write_text_atomic(junit, junit_xml([(set_label(s), set_cases(s)) for s in summaries]))
    if markdown is not None:
        write_text_atomic(markdown, text)
    if step_summary:
        append_step_summary(text)


def publish_run(record: Any, seed: int, junit: Path | None, markdown: Path | None) -> None:
    """``--junit`` / ``--markdown`` for a single run (a set of one repetition); the Markdown goes
    to the step summary only when ``--markdown`` is given."""
    from driver.experiments.stats import record_metas, run_entry, set_summary

    doc = record.to_dict()
    header = {"task": record.task, "experiment": None, "variant": None, "values": {},
              "repetitions": 1, "warmup": 0, "base_seed": seed, "statistic": "median"}
    summary = set_summary(header, [run_entry("repetition", 0, seed, doc, False)],
                          record_metas(doc))
    publish_sets([summary], f"bench-driver: {record.task}", junit, markdown, console=False,
                 step_summary=markdown is not None)
