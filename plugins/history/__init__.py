"""The results history (docs/history.md): every run, set and experiment summary appended to
``RUNS_DIR/history.sqlite``; ``bench-driver history`` shows, imports and checks it.

Start-up stays light: sqlite3 and the store are imported when a run is written or a history
command runs. Turn it off with ``--no-history`` or ``[history] enabled = false`` in
task_config.toml; ``--history-db PATH`` or ``[history] path`` puts it elsewhere (a relative
``path`` is relative to the config file's folder).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from driver.errors import BenchDriverError, ConfigError, StorageError
from driver.hookspecs import hookimpl
from driver.report import Reporter, ReportSettings

if TYPE_CHECKING:
    from driver.config import TaskConfig
    from driver.experiments.summary import ExperimentIndex, SetSummary
    from driver.results import RunRecord
    from plugins.history.store import History

#: Regression detection (plugins.history.check, docs/history.md): earlier points a value is
#: judged against, the fewest that allow a verdict, and the noise units a regression exceeds.
LOOKBACK = 20
MIN_HISTORY = 5
Z_THRESHOLD = 4.0
TABLE_KEYS: dict[str, type] = {"enabled": bool, "path": str}


DEFAULT_NAME = "history.sqlite"  # in RUNS_DIR


def default_database(runs_dir: str | Path) -> Path:
    """The history of the runs under *runs_dir*, when no ``--history-db``/``--db`` names one."""
    return Path(runs_dir) / DEFAULT_NAME


def history_path(settings: ReportSettings) -> Path | None:
    """Where this command's runs are recorded; None when the history is off."""
    if settings.option("no_history", False):
        return None
    chosen = settings.option("history_db")
    return Path(chosen) if chosen else default_database(settings.option("runs_dir", "bench-runs"))


class HistoryReporter(Reporter):
    """Appends runs, sets and experiments to the history. A run of a set is written with its
    set (``report_set``), by the launching driver: never by a backend's worker."""

    def report(self, record: RunRecord, settings: ReportSettings) -> None:
        if not settings.in_set:
            _write(settings, lambda history: history.add_run(record))

    def report_set(self, summary: SetSummary, settings: ReportSettings) -> None:
        from plugins.history.importer import records_of

        _write(settings, lambda history: history.add_set(summary, records_of(summary)))

    def report_experiment(self, experiment: ExperimentIndex, summaries: Sequence[SetSummary],
                          settings: ReportSettings) -> None:
        _write(settings, lambda history: history.add_experiment(experiment))


def _write(settings: ReportSettings, write: Callable[[History], None]) -> None:
    """Open the history (when it is on) and *write*; a failure is said on the console (it
    comes after the console's summary) and raised, so that the run records it (exit 9)."""
    path = history_path(settings)
    if path is None:
        return
    from plugins.history.store import open_history

    try:
        with open_history(path) as history:
            write(history)
    except BenchDriverError as exc:
        print(f"bench-driver: error: the history was not written: {exc}",
              file=settings.stream or sys.stderr)
        raise StorageError(str(exc)) from exc


@hookimpl
def bench_driver_addoption(command: str, parser: argparse.ArgumentParser) -> None:
    if command == "run":
        parser.add_argument("--no-history", action="store_true",
                            help="do not append this run to the history (docs/history.md)")
        parser.add_argument("--history-db", type=Path, metavar="PATH",
                            help="the history database (default: RUNS_DIR/history.sqlite)")


@hookimpl
def bench_driver_register_config_tables() -> dict[str, str]:
    return {"history": "the results history: enabled = true|false, path = \"FILE\""}


@hookimpl
def bench_driver_configure(options: argparse.Namespace, config: TaskConfig | None) -> None:
    if not hasattr(options, "no_history"):
        return  # not a run
    table = config.tables.get("history") if config is not None else None
    if config is not None and table is not None:
        _apply_table(options, config, table)
    path = history_path(ReportSettings(options=options))
    if path is not None:  # refused before the run rather than failing after it
        from driver.paths import check_writable

        check_writable(path, "--history-db" if options.history_db else "--runs-dir")


def _apply_table(options: argparse.Namespace, config: TaskConfig, table: Any) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{config.path}: history = {table!r}: expected a table [history]")
    _check_table(f"{config.path}: [history]", table)
    if table.get("enabled") is False:
        options.no_history = True
    if options.history_db is None and "path" in table:
        options.history_db = config.path.parent / table["path"]


def _check_table(where: str, table: dict[str, Any]) -> None:
    from driver.errors import did_you_mean

    for key, value in table.items():
        if key not in TABLE_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, TABLE_KEYS)}; "
                              f"keys: {', '.join(TABLE_KEYS)}")
        if not isinstance(value, TABLE_KEYS[key]) or (key == "path" and not str(value).strip()):
            kind = "true or false" if key == "enabled" else "a file path"
            raise ConfigError(f"{where} {key} = {value!r}: expected {kind}")


@hookimpl
def bench_driver_register_reporters() -> dict[str, Any]:
    return {"history": HistoryReporter()}


@hookimpl
def bench_driver_register_commands() -> dict[str, Any]:
    from plugins.history.command import HistoryCommand

    return {"history": HistoryCommand()}
