"""``bench-driver history import DIR``: run directories, sets, experiments and old flat results.

Importing is idempotent: a run is known by its run directory, a set by its directory, an
experiment by its directory and a flat result file by its path, so importing a folder twice (or
a folder the driver already recorded) replaces rows instead of adding them.

An old flat result (``dlbenchmark_result.json``: ``{"[framework.]task.metric": number}``) becomes
one run per task: the key's last dotted part is the metric, the rest the task; it started when
the file was last modified.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver.errors import ConfigError

if TYPE_CHECKING:
    from driver.experiments.summary import SetSummary
    from driver.results import RunRecord
    from plugins.history.store import History

DOCUMENTS = ("experiment.json", "summary.json", "record.json")


@dataclass
class Imported:
    """What one import brought in."""

    runs: int = 0
    sets: int = 0
    experiments: int = 0
    flat: int = 0
    skipped: int = 0  # JSON files that are none of the above


def records_of(summary: SetSummary) -> list[RunRecord | None]:
    """The record of each run of *summary* (None where it cannot be read)."""
    from driver.results import load_record

    found: list[RunRecord | None] = []
    for run in summary.runs:
        try:
            found.append(load_record(run.record))
        except ConfigError:
            found.append(None)
    return found


def import_directory(history: History, root: Path) -> Imported:
    """Bring every result under *root* into *history* (sets before the runs outside them)."""
    if not root.exists():
        raise ConfigError(f"{root}: no such file or directory to import")
    files = sorted(root.rglob("*.json")) if root.is_dir() else [root]
    done = Imported()
    in_sets: set[str] = set()
    for path in sorted(files, key=lambda p: _order(p.name)):
        _import_file(history, path, done, in_sets)
    return done


def _order(name: str) -> int:
    return DOCUMENTS.index(name) if name in DOCUMENTS else len(DOCUMENTS)


def _import_file(history: History, path: Path, done: Imported, in_sets: set[str]) -> None:
    from driver.experiments.summary import ExperimentIndex, SetSummary
    from driver.results import load_record

    if path.name == "experiment.json":
        history.add_experiment(ExperimentIndex.load(path))
        done.experiments += 1
    elif path.name == "summary.json":
        summary = SetSummary.load(path)
        summary = summary if summary.directory else _with_directory(summary, path.parent)
        history.add_set(summary, records_of(summary), source="import")
        in_sets.update(str(Path(r.run_dir).absolute()) for r in summary.runs)
        done.sets += 1
    elif path.name == "record.json":
        record = load_record(path)
        if str(Path(record.run_dir).absolute()) not in in_sets:
            history.add_run(record, source="import")
            done.runs += 1
    elif (path.parent / "record.json").is_file():
        pass  # a run's own flat result: its record.json holds the same values and more
    elif _import_flat(history, path):
        done.flat += 1
    else:
        done.skipped += 1


def _with_directory(summary: SetSummary, directory: Path) -> SetSummary:
    from dataclasses import replace

    return replace(summary, directory=str(directory))


def _import_flat(history: History, path: Path) -> bool:
    """Import *path* if it is an old flat result; False when it is another JSON file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(document, dict) or not document or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in document.values()):
        return False
    started = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
    for task, values in _by_task(document).items():
        history.add_run(_flat_record(path, task, values, started.isoformat(timespec="seconds")),
                        source="import")
    return True


def _by_task(document: dict[str, Any]) -> dict[str, dict[str, float]]:
    tasks: dict[str, dict[str, float]] = {}
    for key, value in document.items():
        task, _, metric = key.rpartition(".")
        tasks.setdefault(task or key, {})[metric] = float(value)
    return tasks


def _flat_record(path: Path, task: str, values: dict[str, float], started: str) -> RunRecord:
    from driver.reduce import MetricResult
    from driver.results import OK, RunRecord

    metrics = tuple(MetricResult(name, v, "imported", 1, 1) for name, v in values.items()
                    if v == v and abs(v) != float("inf"))
    # one flat file may hold several tasks: each gets a run "directory" of its own
    where = f"{path.absolute()}#{task}"
    return RunRecord(task=task, command="", status=OK, exit_code=0, started_at=started,
                     ended_at=started, duration_s=0.0, run_dir=where, metrics=metrics)
