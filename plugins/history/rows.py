"""Rows of the history tables from the driver's documents, and history points back from rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from driver.records import Record

if TYPE_CHECKING:
    from driver.experiments.summary import SetSummary
    from driver.results import RunRecord

#: Single runs (not part of a set) whose command succeeded, and sets' statistics, in time order.
POINTS_SQL = """
SELECT r.label, r.task, v.metric, r.started_at, v.value, v.value, v.value, 1, NULL,
       r.git_commit, r.host, v.direction, v.unit, 'run', r.run_dir
FROM runs r JOIN run_values v ON v.run_id = r.id
WHERE r.set_id IS NULL AND r.status IN ('ok', 'missing_metrics'){where}
UNION ALL
SELECT s.label, s.task, m.metric, s.started_at, m.value, coalesce(m.low, m.value),
       coalesce(m.high, m.value), m.n, m.values_json, s.git_commit, s.host, m.direction, m.unit,
       'set', s.directory
FROM sets s JOIN set_metrics m ON m.set_id = s.id
WHERE 1 = 1{where}
ORDER BY 4, 15
"""


class Point(Record):
    """One value of a series: a single run's value, or a set's statistic with its spread."""

    label: str  # the task, or experiment/variant
    task: str
    metric: str
    started_at: str
    value: float
    low: float  # the spread of a set's repetitions (min, max); the value for a single run
    high: float
    n: int  # repetitions behind the value
    values: tuple[float, ...]
    git_commit: str | None
    host: str | None
    direction: str | None
    unit: str | None
    kind: str  # "run" or "set"
    where: str  # the run or set directory

    @property
    def key(self) -> str:
        """The series name: ``label.metric`` (as compare names keys)."""
        return f"{self.label}.{self.metric}"


def now_iso() -> str:
    """The current UTC time as the records write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())  # datetime's isoformat


def run_row(record: RunRecord, label: str | None = None) -> dict[str, Any]:
    """The ``runs`` row of a record (without its set columns)."""
    env = record.environment
    return {"run_dir": str(Path(record.run_dir).absolute()), "task": record.task,
            "label": label or record.task, "status": record.status,
            "exit_code": record.exit_code, "started_at": record.started_at or now_iso(),
            "duration_s": record.duration_s, "git_commit": env.get("git_commit"),
            "host": env.get("host"), "environment": json.dumps(env, default=str),
            "params": json.dumps(record.params, default=str)}


def set_row(summary: SetSummary, records: Sequence[RunRecord | None]) -> dict[str, Any]:
    """The ``sets`` row of a summary: it started when its first readable run did."""
    env = summary.environment or next((r.environment for r in records if r is not None), {})
    started = min((r.started_at for r in records if r is not None and r.started_at),
                  default=now_iso())
    return {"directory": str(Path(summary.directory).absolute()), "task": summary.task,
            "label": summary.label, "experiment": summary.experiment,
            "variant": summary.variant, "statistic": summary.statistic,
            "repetitions": summary.repetitions, "started_at": started,
            "git_commit": env.get("git_commit"), "host": env.get("host"),
            "environment": json.dumps(env, default=str),
            "matrix_values": json.dumps(summary.values, default=str)}


def point_of(row: Sequence[Any]) -> Point:
    """A :class:`Point` of a row of :data:`POINTS_SQL`."""
    (label, task, metric, started_at, value, low, high, n, values_json, commit, host, direction,
     unit, kind, where) = row
    values = tuple(json.loads(values_json)) if values_json else (value,)
    return Point(label, task, metric, started_at, value, low, high, n, values, commit, host,
                 direction, unit, kind, where)
