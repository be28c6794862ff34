"""The history database: schema versions and migration, replacing rows, concurrent writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

import pytest

from conftest import REPO
from driver.errors import ConfigError
from driver.reduce import MetricResult
from driver.results import RunRecord
from plugins.history.store import SCHEMA_VERSION, migrate, open_history

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fake_record(run_dir: Path | str, values: dict[str, float], hour: float = 0.0,
                task: str = "toy", commit: str | None = None,
                direction: str | None = None) -> RunRecord:
    """A finished run's record with *values*, started *hour* hours after :data:`START`."""
    started = (START + timedelta(hours=hour)).isoformat(timespec="milliseconds")
    metrics = tuple(MetricResult(name, v, "last", 1, 1, direction=direction)
                    for name, v in values.items())
    return RunRecord(task=task, command="true", status="ok", exit_code=0, started_at=started,
                     ended_at=started, duration_s=1.0, run_dir=str(run_dir), metrics=metrics,
                     environment={"git_commit": commit or f"{int(hour):040x}", "host": "h1"})


def write_series(db: Path, metric: str, values: Sequence[float], task: str = "toy",
                 direction: str | None = None) -> None:
    """One run per value, an hour apart, each with a commit of its own."""
    with open_history(db) as history:
        for i, value in enumerate(values):
            history.add_run(fake_record(db.parent / f"{task}-{metric}-{i}", {metric: value},
                                        float(i), task, direction=direction))


def test_a_new_history_has_the_current_schema_and_wal(tmp_path: Path) -> None:
    with open_history(tmp_path / "h.sqlite") as history:
        assert history.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert history.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_older_schema_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, path, target=1)  # a history written by the first schema
    db.execute("INSERT INTO runs (run_dir, task, label, status, started_at, environment, params)"
               " VALUES ('/r', 'toy', 'toy', 'ok', '2026-01-01', '{}', '{}')")
    db.close()
    with open_history(path) as history:
        assert history.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
        assert history.db.execute("SELECT run_dir, source FROM runs").fetchall() == \
            [("/r", "run")]


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    open_history(path).__exit__()
    sqlite3.connect(path).execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError, match="schema version 99 is newer.*upgrade bench-driver"):
        open_history(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    path.write_text("not a database, just text that is long enough " * 40)
    with pytest.raises(ConfigError, match="not a bench-driver history"):
        open_history(path)


def test_a_locked_history_is_a_storage_error_not_a_foreign_file(tmp_path: Path,
                                                                 monkeypatch) -> None:
    from driver.errors import StorageError
    from plugins.history import store

    path = tmp_path / "history.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)  # not in WAL yet: a lock blocks all
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # another writer, mid-transaction
    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.2)
    try:
        with pytest.raises(StorageError, match="cannot open the history: database is locked"):
            open_history(path)
    finally:
        holder.rollback()
        holder.close()


def test_a_reading_command_refuses_a_missing_history(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no history here.*history import"):
        open_history(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()


def test_the_same_run_directory_replaces_its_row(tmp_path: Path) -> None:
    with open_history(tmp_path / "h.sqlite") as history:
        history.add_run(fake_record(tmp_path / "r", {"speed": 1.0}))
        history.add_run(fake_record(tmp_path / "r", {"speed": 2.0, "loss": 0.5}))
        assert history.counts()["runs"] == 1
        assert {p.metric: p.value for p in history.points()} == {"speed": 2.0, "loss": 0.5}


WRITER = """
import sys
from pathlib import Path
sys.path[:0] = [{repo!r}, {tests!r}]
from plugins.history.store import open_history
from test_history_store import fake_record
db, me = Path(sys.argv[1]), int(sys.argv[2])
for i in range(25):
    with open_history(db) as history:
        history.add_run(fake_record(db.parent / f"w{{me}}-{{i}}", {{"speed": float(i)}}, i))
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    code = WRITER.format(repo=str(REPO), tests=str(REPO / "tests"))
    writers = [subprocess.Popen([sys.executable, "-c", code, str(db), str(me)],
                                stderr=subprocess.PIPE, text=True) for me in range(4)]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 4, errors
    with open_history(db) as history:
        assert history.counts()["runs"] == 100
        assert len(history.points()) == 100
        assert history.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
