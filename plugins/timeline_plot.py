"""Draws each run's timeline.csv as timeline.png, when matplotlib is installed.

Runs shorter than :data:`MIN_DURATION_S` are not drawn (a handful of samples says nothing a plot
would add, and importing matplotlib costs more than such a run); ``bench-driver plot RUN_DIR``
draws any run on demand. A plot that cannot be drawn is a warning, never a failed run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from driver.errors import ConfigError
from driver.hookspecs import hookimpl
from driver.report import ReportSettings
from driver.results import RunRecord

MIN_DURATION_S = 2.0


class TimelinePlot:
    """Writes ``RUN_DIR/timeline.png`` beside ``timeline.csv``."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        if record.duration_s < MIN_DURATION_S or importlib.util.find_spec("matplotlib") is None:
            return
        from driver.plot import plot_timeline

        try:
            plot_timeline(Path(record.run_dir))
        except ConfigError as exc:
            print(f"bench-driver: warning: no timeline plot: {exc}", file=settings.stream or sys.stderr)


@hookimpl
def bench_driver_register_reporters() -> dict[str, object]:
    return {"timeline_plot": TimelinePlot()}
