"""Draws each run's timeline.csv as timeline.png, when matplotlib is installed.

With ``--plot auto`` (the default) runs shorter than :data:`MIN_DURATION_S` are not drawn:
importing matplotlib and drawing costs about a second, too much to add to every short run (or to
each of many repetitions); ``--plot always`` draws every run, ``--plot never`` none, and
``bench-driver plot RUN_DIR`` draws any run later. A plot that cannot be drawn is a warning,
never a failed run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from driver.errors import ConfigError
from driver.hookspecs import hookimpl
from driver.report import ReportSettings
from driver.results import RunRecord

MIN_DURATION_S = 10.0


class TimelinePlot:
    """Writes ``RUN_DIR/timeline.png`` beside ``timeline.csv``."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        if settings.plot == "never" or importlib.util.find_spec("matplotlib") is None:
            return
        if settings.plot == "auto" and record.duration_s < MIN_DURATION_S:
            return
        from plugins.timeline_plot.draw import plot_timeline

        try:
            plot_timeline(Path(record.run_dir))
        except ConfigError as exc:
            print(f"bench-driver: warning: no timeline plot: {exc}", file=settings.stream or sys.stderr)


@hookimpl
def bench_driver_register_reporters() -> dict[str, object]:
    return {"timeline_plot": TimelinePlot()}
