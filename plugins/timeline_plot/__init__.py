"""Draws each run's timeline.csv as timeline.png, when matplotlib is installed; owns ``--plot``
and the ``plot`` subcommand (``bench-driver plot RUN_DIR``).

With ``--plot auto`` (the default) runs shorter than :data:`MIN_DURATION_S` are not drawn:
importing matplotlib and drawing costs about a second, too much to add to every short run (or to
each of many repetitions); a run skipped as short, or for want of matplotlib, says so (once per
invocation); ``--plot always``
draws every run (and is refused before anything starts when matplotlib is missing), ``--plot
never`` none. A plot that cannot be drawn is a warning, never a failed run.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver.commands import Command
from driver.errors import ConfigError
from driver.hookspecs import hookimpl
from driver.report import Reporter, ReportSettings
from driver.results import RunRecord

if TYPE_CHECKING:
    from driver.config import TaskConfig
    from driver.plugins import Plugins

MIN_DURATION_S = 10.0
INSTALL = "pip install 'bench-driver[plot]'"


def _have_matplotlib() -> bool:
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):  # a broken or half-removed installation
        return False


class TimelinePlot(Reporter):
    """Writes ``RUN_DIR/timeline.png`` beside ``timeline.csv``."""

    def __init__(self) -> None:
        self._said: set[str] = set()  # each "not drawn" note once per driver process

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        mode = settings.option("plot", "auto")
        stream = settings.stream or sys.stderr
        if mode == "never":
            return
        if mode == "auto" and record.duration_s < MIN_DURATION_S:
            self._note("short", f"no timeline plot for runs under {MIN_DURATION_S:g} s with "
                       f"--plot auto (this one took {record.duration_s:.1f} s); --plot always "
                       f"draws every run, bench-driver plot RUN_DIR draws one later", stream)
            return
        if not _have_matplotlib():
            self._note("matplotlib", f"no timeline plot (matplotlib is not installed: "
                       f"{INSTALL})", stream)
            return
        from plugins.timeline_plot.draw import plot_timeline

        try:
            plot_timeline(Path(record.run_dir))
        except ConfigError as exc:
            print(f"bench-driver: warning: no timeline plot: {exc}", file=stream)

    def _note(self, why: str, text: str, stream: Any) -> None:
        if why not in self._said:
            self._said.add(why)
            print(f"bench-driver: note: {text}", file=stream)


class PlotCommand(Command):
    """``bench-driver plot RUN_DIR``."""

    help = "draw a run directory's timeline.csv as timeline.png"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", type=Path)

    def run(self, args: argparse.Namespace, plugins: Plugins) -> int:
        from plugins.timeline_plot.draw import plot_timeline

        print(plot_timeline(args.run_dir))
        return 0


@hookimpl
def bench_driver_addoption(command: str, parser: argparse.ArgumentParser) -> None:
    if command == "run":
        parser.add_argument("--plot", choices=("auto", "always", "never"), default="auto",
                            help="draw timeline.png: auto = runs of 10 s or more, when "
                            "matplotlib is installed (default)")


@hookimpl
def bench_driver_configure(options: argparse.Namespace, config: TaskConfig | None) -> None:
    if getattr(options, "plot", None) == "always" and not _have_matplotlib():
        raise ConfigError(f"--plot always needs matplotlib, which is not installed: {INSTALL} "
                          f"(or use --plot auto)")


@hookimpl
def bench_driver_register_reporters() -> dict[str, Any]:
    return {"timeline_plot": TimelinePlot()}


@hookimpl
def bench_driver_register_commands() -> dict[str, Command]:
    return {"plot": PlotCommand()}
