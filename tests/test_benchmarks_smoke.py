"""The benchmark scripts run end to end in their tiny ``--quick`` mode and print their ratio line.

Timings are never asserted here (benchmarks/ prints them): only that each script runs the real
driver, exits 0 and reports a ratio with its target.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

RATIO_LINE = re.compile(r"^RATIO (\w+) .*= (\d+\.\d+)x \(target [^)]+\): (PASS|FAIL)$",
                        re.MULTILINE)


def run_script(name: str, *args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), "--quick", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "script, ratio_name, extra",
    [
        ("scrape_throughput.py", "scrape_throughput", ("--data-dir", "data")),
        ("startup_overhead.py", "startup_overhead", ()),
        ("memory_accuracy.py", "memory_accuracy", ()),
    ],
)
def test_script_prints_its_ratio(tmp_path: Path, script: str, ratio_name: str,
                                 extra: tuple[str, ...]) -> None:
    out = run_script(script, *extra, cwd=tmp_path)
    found = RATIO_LINE.findall(out)
    assert [name for name, _, _ in found] == [ratio_name], out
    assert float(found[0][1]) > 0


def test_scrape_counts_agree_with_grep(tmp_path: Path) -> None:
    """Correctness, not speed: the driver's match counts equal grep's on the generated log."""
    out = run_script("scrape_throughput.py", "--data-dir", "data", "--no-breakdown", cwd=tmp_path)
    assert "counts equal: PASS" in out, out
    assert (tmp_path / "data").is_dir()  # the log went where it was told, not into the repo
