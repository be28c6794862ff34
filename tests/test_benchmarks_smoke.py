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


CONSOLES = ("quiet", "file", "pipe", "pty")
SCRAPE_RATIOS = ([f"scrape_vs_grep_{s}_{c}" for s in "abc" for c in CONSOLES]
                 + [f"scrape_vs_old_{s}_{c}" for s in "abcd" for c in CONSOLES]
                 + [f"shared_pattern_d_over_a_{c}" for c in CONSOLES]
                 + ["shared_pattern_8_metrics_over_1"])


@pytest.mark.parametrize(
    "script, ratio_name",
    [("startup_overhead.py", "startup_overhead"), ("memory_accuracy.py", "memory_accuracy")],
)
def test_script_prints_its_ratio(tmp_path: Path, script: str, ratio_name: str) -> None:
    out = run_script(script, cwd=tmp_path)
    found = RATIO_LINE.findall(out)
    assert [name for name, _, _ in found] == [ratio_name], out
    assert float(found[0][1]) > 0


def test_scrape_matrix_runs_every_cell_and_counts_agree_with_grep(tmp_path: Path) -> None:
    """Every cell of the matrix (4 pattern sets x 4 consoles, a pseudo-terminal included) ran the
    real driver and printed its ratio; correctness, not speed: every driver run's match counts
    equal grep's on the generated log, and the old driver's path found the same."""
    out = run_script("scrape_throughput.py", "--data-dir", "data", cwd=tmp_path)
    found = RATIO_LINE.findall(out)
    assert sorted(name for name, _, _ in found) == sorted(SCRAPE_RATIOS), out
    assert all(float(value) > 0 for _, value, _ in found)
    assert "counts equal: PASS" in out, out
    assert "DIFFERENT" not in out and "prefilter hyperscan" in out, out
    assert (tmp_path / "data").is_dir()  # the log went where it was told, not into the repo


def test_scrape_benchmark_fails_loudly_when_the_driver_miscounts(tmp_path: Path) -> None:
    """A driver whose scraper counts one match too many per block: exit 1, said loudly."""
    import os
    import shutil

    proto = tmp_path / "proto"
    for package in ("driver", "plugins"):
        shutil.copytree(REPO / package, proto / package)
    scrape = proto / "driver" / "scrape.py"
    source = scrape.read_text()
    assert "self.matches += len(texts)" in source
    scrape.write_text(source.replace("self.matches += len(texts)",
                                     "self.matches += len(texts) + 1"))
    env = {**os.environ, "PYTHONPATH": str(proto),
           "BENCH_DRIVER_COMMAND": f"{sys.executable} -m driver"}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scrape_throughput.py"), "--quick", "--sets",
         "a", "--consoles", "quiet", "--no-breakdown", "--data-dir", "data"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "DIFFERENT !!!" in done.stdout and "counts equal: FAIL" in done.stdout
    assert "the driver's match counts differ from grep's" in done.stderr
