"""The runner's benchmark scripts run end to end in ``--quick`` mode and print their ratio line.

Timings are never asserted here (the scripts print them): only that each runs the real driver,
exits 0 and reports its ratio with a target.
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


@pytest.mark.parametrize("script, ratio_name", [("control_latency.py", "control_latency"),
                                                ("console_echo.py", "console_echo")])
def test_script_prints_its_ratio(tmp_path: Path, script: str, ratio_name: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--quick"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    found = RATIO_LINE.findall(done.stdout)
    assert [name for name, _, _ in found] == [ratio_name], done.stdout
    assert float(found[0][1]) > 0
