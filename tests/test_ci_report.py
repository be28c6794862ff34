"""JUnit XML, Markdown, CSV and the GitHub step summary."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

from driver.experiments.summary import SetRun, SetSummary, record_metas
from driver.reduce import MetricResult
from driver.results import RunRecord, write_text_atomic
from plugins.ci_report import (JUnitCase, append_step_summary, csv_text, junit_xml, markdown_text,
                               set_cases)
from plugins.console_report import print_table


def record(status="ok", speed=None, exit_code=0, index=0):
    return RunRecord(task="t", command="", status=status, exit_code=exit_code, started_at="",
                     ended_at="", duration_s=1.5, run_dir=f"runs/{index}",
                     errors=() if status == "ok" else ("the command exited with 3",),
                     metrics=(MetricResult("speed", speed, "last", 1, 1, direction="higher"),
                              MetricResult("extra", None, "last", 0, 0, optional=True)))


def summary(*records, experiment=None, variant=None):
    runs = [SetRun.of("repetition", i, 10 + i, r, False) for i, r in enumerate(records)]
    header = SetSummary("t", len(records), 0, 10, "median", (), {}, experiment=experiment,
                        variant=variant)
    return SetSummary.build(header, runs, record_metas(records[0]))


def test_junit_is_well_formed_with_failures_and_skips(tmp_path):
    good = summary(record(speed=1.0), record(speed=3.0, index=1), experiment="e", variant="v=1")
    bad = summary(record(speed=2.0), record("failed", exit_code=3, index=1),
                  record("missing_metrics", index=2))
    path = tmp_path / "junit.xml"
    write_text_atomic(path, junit_xml([("e/v=1", set_cases(good)), ("t", set_cases(bad))]))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "3"
    first, second = root.findall("testsuite")
    assert (first.get("tests"), first.get("failures"), first.get("skipped")) == ("4", "0", "1")
    names = [c.get("name") for c in first.findall("testcase")]
    assert names == ["repetition 0 (seed 10)", "repetition 1 (seed 11)", "metric speed",
                     "metric extra"]
    assert first.findall("testcase")[3].find("skipped") is not None
    failures = {c.get("name"): c.find("failure") for c in second.findall("testcase")}
    assert failures["repetition 0 (seed 10)"] is None
    run_failure = failures["repetition 1 (seed 11)"]
    assert run_failure is not None and "failed (exit code 3)" in run_failure.get("message", "")
    assert failures["repetition 2 (seed 12)"] is not None
    metric_failure = failures["metric speed"]  # missing from the missing_metrics repetition
    assert metric_failure is not None and "missing from 1 measured" in metric_failure.get(
        "message", "")
    assert second.get("time") == "4.500"


def test_junit_escapes_text():
    text = junit_xml([("a<b", [JUnitCase("x & y", failure='quote " <tag>')])])
    case = ET.fromstring(text).find("testsuite/testcase")
    assert case is not None and case.get("name") == "x & y"
    failure = case.find("failure")
    assert failure is not None and failure.text == 'quote " <tag>'


def test_markdown_and_csv_tables():
    s = summary(record(speed=1.0), record(speed=2.0, index=1), record(speed=9.0, index=2),
                experiment="grid", variant="a=1|2")
    text = markdown_text([s], "title")
    assert text.startswith("### title\n")
    assert "| grid/a=1\\|2 | speed | 3 | 2 | 4 | 4.3589 | 1 | 9 | - |" in text
    rows = list(csv.DictReader(io.StringIO(csv_text([s]))))
    assert rows[0]["variant"] == "a=1|2" and rows[0]["value"] == "2.0"
    assert rows[0]["std"] == str(4.358898943540674) and rows[1]["metric"] == "extra"
    assert rows[1]["n"] == "0" and rows[1]["median"] == ""


def test_plain_console_table_lists_problems():
    stream = io.StringIO()
    print_table([summary(record(speed=1.0), record("failed", index=1))], stream)
    out = stream.getvalue()
    assert "speed" in out and "! t repetition 1: failed (the command exited with 3)" in out


def test_step_summary_appends(tmp_path):
    path = tmp_path / "step.md"
    append_step_summary("one", {"GITHUB_STEP_SUMMARY": str(path)})
    append_step_summary("two", {"GITHUB_STEP_SUMMARY": str(path)})
    append_step_summary("three", {})
    assert path.read_text() == "one\ntwo\n"


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    write_text_atomic(tmp_path / "a" / "x.md", "text")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.md"]


def test_single_run_junit_and_markdown_through_the_cli(cli, tmp_path, write_config):
    write_config("""
        [tasks.t]
        command_to_execute = "{python} -c 'print(1)'"
        patterns = ['^speed: (\\S+)', '^(\\d+)$']
        metrics = ['speed', 'one']
        compute_method = ['last', 'last']
    """)
    step = tmp_path / "step.md"
    run = cli("--task-name", "t", "--junit", "j.xml", env={"GITHUB_STEP_SUMMARY": str(step)})
    assert run.returncode == 5
    root = ET.parse(tmp_path / "j.xml").getroot()
    failed = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None]
    assert failed == ["repetition 0 (seed 0)", "metric speed"]
    assert not step.exists()  # a single run adds to the step summary only with --markdown
    run = cli("--task-name", "t", "--markdown", "m.md", env={"GITHUB_STEP_SUMMARY": str(step)})
    assert "| t | one | 1 | 1 |" in (tmp_path / "m.md").read_text()
    assert step.read_text().strip() == (tmp_path / "m.md").read_text().strip()
