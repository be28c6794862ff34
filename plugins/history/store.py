"""The results history: an SQLite database (stdlib sqlite3, WAL) of every run, set and experiment.

Only the launching driver writes it: runs that backends' workers execute come back to the
launcher and reach the history through its reporters (SQLite must not be shared across hosts or
network file systems). Local writers may be many at once (two shells, ``-j``): each write is one
``BEGIN IMMEDIATE`` transaction and waits up to :data:`BUSY_TIMEOUT_S` for the lock.

The schema is versioned with ``PRAGMA user_version``: :data:`MIGRATIONS` ``[i]`` takes a database
from version ``i`` to ``i + 1``, so an older history is migrated in place when it is opened, and a
newer one is refused. Schema history (docs/history.md):

* 1: ``runs`` (+ ``run_values``), ``sets`` (+ ``set_metrics``), ``experiments``.
* 2: ``source`` of runs and sets (``run`` or ``import``) and the indices the report reads by.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager, Iterator, Mapping, Sequence

# The module whose objects the sqlite3 package re-exports (CPython's and PyPy's): the package
# adds default datetime adapters, which the history never uses, and imports datetime for them:
# ~5 ms at the end of every run.
import _sqlite3 as sqlite3

from driver import __version__
from driver.errors import ConfigError, StorageError
from plugins.history import DEFAULT_NAME
from plugins.history.rows import POINTS_SQL, Point, now_iso, point_of, run_row, set_row

if TYPE_CHECKING:
    from driver.experiments.summary import ExperimentIndex, SetSummary
    from driver.results import RunRecord

BUSY_TIMEOUT_S = 60.0

_V1 = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, run_dir TEXT NOT NULL UNIQUE, task TEXT NOT NULL,
    label TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER, started_at TEXT NOT NULL,
    duration_s REAL, git_commit TEXT, host TEXT, set_id INTEGER REFERENCES sets(id),
    kind TEXT, repetition INTEGER, environment TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE run_values (
    run_id INTEGER NOT NULL REFERENCES runs(id), metric TEXT NOT NULL, value REAL NOT NULL,
    direction TEXT, unit TEXT, PRIMARY KEY (run_id, metric));
CREATE TABLE sets (
    id INTEGER PRIMARY KEY, directory TEXT NOT NULL UNIQUE, task TEXT NOT NULL,
    label TEXT NOT NULL, experiment TEXT, variant TEXT, statistic TEXT NOT NULL,
    repetitions INTEGER NOT NULL, started_at TEXT NOT NULL, git_commit TEXT, host TEXT,
    environment TEXT NOT NULL, matrix_values TEXT NOT NULL);
CREATE TABLE set_metrics (
    set_id INTEGER NOT NULL REFERENCES sets(id), metric TEXT NOT NULL, value REAL NOT NULL,
    n INTEGER NOT NULL, low REAL, high REAL, std REAL, values_json TEXT NOT NULL,
    direction TEXT, unit TEXT, PRIMARY KEY (set_id, metric));
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY, directory TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    task TEXT NOT NULL, recorded_at TEXT NOT NULL, document TEXT NOT NULL);
"""
_V2 = """
ALTER TABLE runs ADD COLUMN source TEXT NOT NULL DEFAULT 'run';
ALTER TABLE sets ADD COLUMN source TEXT NOT NULL DEFAULT 'run';
CREATE INDEX runs_by_label ON runs (label, started_at);
CREATE INDEX sets_by_label ON sets (label, started_at);
"""
#: ``MIGRATIONS[i]`` takes the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)


class History:
    """An open history database (a context manager; :func:`open_history` opens one)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.db, self.path = connection, path

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()

    def add_run(self, record: RunRecord, source: str = "run", set_id: int | None = None,
                kind: str | None = None, repetition: int | None = None) -> None:
        """Append (or, for a run directory already there, replace) one run and its values."""
        with self._write():
            self._put_run(record, source, set_id, kind, repetition)

    def add_set(self, summary: SetSummary, records: Sequence[RunRecord | None],
                source: str = "run") -> None:
        """Append (or replace) a set, its metrics' statistics and its runs (*records*, in the
        order of ``summary.runs``; None for a run whose record cannot be read)."""
        with self._write():
            set_id = self._replace("sets", "directory", {**set_row(summary, records),
                                                         "source": source})
            self.db.execute("DELETE FROM set_metrics WHERE set_id = ?", (set_id,))
            for name, m in summary.metrics.items():
                value = summary.value(name)
                if m.n and value is not None:
                    self.db.execute("INSERT INTO set_metrics VALUES (?,?,?,?,?,?,?,?,?,?)", (
                        set_id, name, value, m.n, m.min, m.max, m.std, json.dumps(m.values),
                        m.direction, m.unit))
            for run, record in zip(summary.runs, records):
                if record is not None:
                    self._put_run(record, source, set_id, run.kind, run.index, summary.label)

    def add_experiment(self, index: ExperimentIndex) -> None:
        """Append (or replace) an experiment's index; its sets come through :meth:`add_set`."""
        with self._write():
            self._replace("experiments", "directory", {
                "directory": str(Path(index.directory).absolute()), "name": index.experiment,
                "task": index.task, "recorded_at": now_iso(),
                "document": json.dumps(index.to_dict())})

    def _put_run(self, record: RunRecord, source: str, set_id: int | None, kind: str | None,
                 repetition: int | None, label: str | None = None) -> None:
        run_id = self._replace("runs", "run_dir", {**run_row(record, label), "set_id": set_id,
                                                   "kind": kind, "repetition": repetition,
                                                   "source": source})
        self.db.execute("DELETE FROM run_values WHERE run_id = ?", (run_id,))
        metas = {m.name: m for m in record.metrics}
        for name, value in record.values().items():
            meta = metas.get(name)
            self.db.execute("INSERT INTO run_values VALUES (?,?,?,?,?)", (
                run_id, name, value, meta.direction if meta else None,
                meta.unit if meta else None))

    def _replace(self, table: str, unique: str, row: Mapping[str, Any]) -> int:
        """Insert *row*, or update the row with the same *unique* column; its id."""
        names = ", ".join(row)
        updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != unique)
        self.db.execute(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(row))}) "
                        f"ON CONFLICT({unique}) DO UPDATE SET {updates}", tuple(row.values()))
        found = self.db.execute(f"SELECT id FROM {table} WHERE {unique} = ?",
                                (row[unique],)).fetchone()
        return int(found[0])

    def _write(self) -> ContextManager[None]:
        return _transaction(self.db, self.path)

    def points(self, label: str | None = None, metric: str | None = None,
               since: str | None = None) -> list[Point]:
        """Every value in time order: single runs (not part of a set) and sets' statistics."""
        where, args = _filters(label, metric, since)
        rows = self.db.execute(POINTS_SQL.format(where=where), args * 2).fetchall()
        return [point_of(row) for row in rows]

    def last_run_dir(self) -> str | None:
        """The directory of the run that started last (for its memory timeline)."""
        found = self.db.execute("SELECT run_dir FROM runs ORDER BY started_at DESC, id DESC "
                                "LIMIT 1").fetchone()
        return found[0] if found else None

    def run_dirs(self) -> Iterator[tuple[str, str, str]]:
        """``(label, run_dir, params JSON)`` of every run, oldest first."""
        yield from self.db.execute("SELECT label, run_dir, params FROM runs ORDER BY "
                                   "started_at, id")

    def experiments(self) -> list[dict[str, Any]]:
        """The latest index document of each experiment (by name), with its directory."""
        rows = self.db.execute("SELECT directory, document FROM experiments ORDER BY "
                               "recorded_at, id").fetchall()
        latest = {json.loads(doc)["experiment"]: (directory, json.loads(doc))
                  for directory, doc in rows}
        return [{**doc, "directory": directory} for directory, doc in latest.values()]

    def set_metrics(self, directory: str) -> dict[str, float]:
        """The reported statistic of each metric of the set in *directory*."""
        rows = self.db.execute("SELECT m.metric, m.value FROM set_metrics m JOIN sets s ON "
                               "s.id = m.set_id WHERE s.directory = ?", (directory,))
        return {name: value for name, value in rows}

    def counts(self) -> dict[str, int]:
        """Rows per table (runs, sets, experiments)."""
        return {t: int(self.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in ("runs", "sets", "experiments")}


def _filters(label: str | None, metric: str | None,
             since: str | None) -> tuple[str, tuple[str, ...]]:
    clauses: list[str] = []
    args: list[str] = []
    if label is not None:  # a task name, or an experiment's experiment/variant
        clauses.append("(label = ? OR task = ?)")
        args += [label, label]
    if metric is not None:
        clauses.append("metric = ?")
        args.append(metric)
    if since is not None:
        clauses.append("started_at >= ?")
        args.append(since)
    return (" AND " + " AND ".join(clauses)) if clauses else "", tuple(args)


@contextmanager
def _transaction(db: sqlite3.Connection, path: Path) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error); sqlite errors, the commit's
    included (a full disk), as StorageError."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot write the history: {exc}") from exc


def open_history(path: str | Path, create: bool = True) -> History:
    """Open (creating and migrating as needed) the history at *path*.

    A database of a newer schema, or a file that is not an SQLite database, is a ConfigError
    naming the file; with ``create=False`` a missing file is one too (commands that only read)."""
    path = Path(path)
    if not create and not path.is_file():
        raise ConfigError(f"{path}: no history here; run a task first (it writes "
                          f"RUNS_DIR/{DEFAULT_NAME}), pass --db PATH, or bring in old results "
                          f"with `bench-driver history import DIR`")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(f"{path}: cannot open the history: {exc}") from exc
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints, never corrupt
        migrate(db, path)
    except sqlite3.DatabaseError as exc:
        db.close()
        if getattr(exc, "sqlite_errorname", "SQLITE_NOTADB") != "SQLITE_NOTADB":  # locked, I/O
            raise StorageError(f"{path}: cannot open the history: {exc}") from exc
        raise ConfigError(f"{path}: not a bench-driver history ({exc}); move it away or pass "
                          f"--db PATH") from None
    except BaseException:
        db.close()
        raise
    return History(db, path)


def migrate(db: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> None:
    """Bring the schema to *target*, in one transaction (concurrent openers wait, then see it
    done); refuse a database newer than this bench-driver."""
    if _version(db) == target:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = _version(db)
        if version > SCHEMA_VERSION:
            raise ConfigError(f"{path}: history schema version {version} is newer than this "
                              f"bench-driver {__version__} reads ({SCHEMA_VERSION}); upgrade "
                              f"bench-driver")
        for script in MIGRATIONS[version:target]:
            for statement in filter(str.strip, script.split(";")):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {max(version, target)}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])
