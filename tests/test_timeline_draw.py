"""Plotting a run's timeline (plugins/timeline_plot/draw.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from driver.errors import ConfigError
from plugins.timeline_plot.draw import plot_timeline, read_timeline
from driver.sampling import SamplingThread
from plugins.cpu_memory import CpuMemorySampler

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GPU_TIMELINE = """\
time_s,cpu_rss_mib,processes,gpu0_used_mib,gpu0_task_mib,gpu0_util_pct,gpu3_used_mib,gpu3_task_mib,gpu3_util_pct
0.0,10.5,1,500.0,0.0,0,300.0,0.0,0
0.1,210.0,2,1500.0,1000.0,95,,,
0.2,220.25,2,1600.0,1100.0,97,1300.0,1000.0,88
0.3,12.0,1,500.0,0.0,3,300.0,0.0,0
"""


def test_plots_cpu_and_gpu_panels(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "timeline.csv").write_text(GPU_TIMELINE)
    image = plot_timeline(tmp_path)
    assert image == tmp_path / "timeline.png"
    assert image.read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "timeline.png.partial").exists()


def test_plots_a_cpu_only_timeline_written_by_the_sampling_thread(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    thread = SamplingThread([CpuMemorySampler()], 0.01, tmp_path / "timeline.csv", lambda: [])
    thread.start()
    thread.stop()
    assert plot_timeline(tmp_path).read_bytes().startswith(PNG_MAGIC)


def test_empty_cells_are_gaps(tmp_path: Path) -> None:
    path = tmp_path / "timeline.csv"
    path.write_text(GPU_TIMELINE)
    series = read_timeline(path)
    assert series["gpu3_task_mib"][0] == 0.0
    assert series["gpu3_task_mib"][1] != series["gpu3_task_mib"][1]  # NaN: drawn as a gap
    assert series["cpu_rss_mib"][2] == 220.25


def test_missing_timeline_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no timeline to plot: .*timeline\.csv' does not exist"):
        plot_timeline(tmp_path)


@pytest.mark.parametrize(
    "text, problem",
    [("", "is empty or has no 'time_s' column"), ("time_s,cpu_rss_mib\n", "has a header but no samples")],
)
def test_empty_timeline_is_a_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "timeline.csv").write_text(text)
    with pytest.raises(ConfigError, match=problem):
        plot_timeline(tmp_path)


def test_without_matplotlib_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "timeline.csv").write_text(GPU_TIMELINE)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match=r"pip install 'bench-driver\[plot\]'"):
        plot_timeline(tmp_path)
    assert not (tmp_path / "timeline.png").exists()
