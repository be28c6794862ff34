"""benchmarks/history_report.py runs end to end in its ``--quick`` mode and prints its ratios
(timings are never asserted: the script prints them)."""

from __future__ import annotations

from pathlib import Path

from test_benchmarks_smoke import RATIO_LINE, run_script


def test_history_report_benchmark_prints_its_ratios(tmp_path: Path) -> None:
    out = run_script("history_report.py", cwd=tmp_path)
    found = RATIO_LINE.findall(out)
    assert [name for name, _, _ in found] == ["history_report_over_select",
                                              "history_run_overhead"], out
    assert all(float(value) > 0 for _, value, _ in found)
    assert "the history costs" in out and "ms per run" in out
