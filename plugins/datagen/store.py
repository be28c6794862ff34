"""The per-epoch store: one SQLite file per taskid, written by one process at a time.

Why SQLite (the standard library, no extra): every epoch is one transaction holding the epoch's
metrics *and* the model's checkpoint after it, so a killed job loses at most the epoch it was
training, and the store never holds metrics without the checkpoint that continues from them.
One file per taskid because a stream is the unit of work (one worker, one Slurm job): no two
processes write one file, which keeps SQLite's locking out of shared file systems (NFS), and
``merge`` reads them all. Parquet would need pyarrow and cannot be appended transactionally.

Schema (``FORMAT_VERSION`` in ``meta``)::

    models(taskid, model_idx, dataset, config JSON, seed, params_m, flops_m)
    epochs(taskid, model_idx, dataset, epoch, learning_rate, train_loss, train_accuracy,
           valid_loss, valid_accuracy, train_time_s, eval_time_s, latency_s)
    checkpoints(taskid, model_idx, dataset, epoch, state BLOB)   -- the latest epoch only

Keys are (taskid, model_idx, dataset[, epoch]); ``epoch`` counts epochs done (1-based);
``valid_*`` is the data set's evaluation split (``x-valid`` of cifar10-valid); accuracies in %;
times are the only hardware-dependent columns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from driver.errors import StorageError

if TYPE_CHECKING:
    import sqlite3

FORMAT_VERSION = 1
EPOCH_COLUMNS = ("learning_rate", "train_loss", "train_accuracy", "valid_loss", "valid_accuracy",
                 "train_time_s", "eval_time_s", "latency_s")
#: The columns that do not depend on the hardware (compared in reproducibility checks).
EXACT_COLUMNS = EPOCH_COLUMNS[:5]
_KEY = "taskid INTEGER, model_idx INTEGER, dataset TEXT"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models({_KEY}, config TEXT NOT NULL, seed INTEGER NOT NULL,
    params_m REAL, flops_m REAL, PRIMARY KEY(taskid, model_idx, dataset));
CREATE TABLE IF NOT EXISTS epochs({_KEY}, epoch INTEGER,
    {", ".join(f"{c} REAL NOT NULL" for c in EPOCH_COLUMNS)},
    PRIMARY KEY(taskid, model_idx, dataset, epoch));
CREATE TABLE IF NOT EXISTS checkpoints({_KEY}, epoch INTEGER NOT NULL, state BLOB NOT NULL,
    PRIMARY KEY(taskid, model_idx, dataset));
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create) a store file; StorageError naming it when it is not a store."""
    import sqlite3

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=60)
        db.executescript(SCHEMA)
        version = db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
        if version is None:
            with db:
                db.execute("INSERT INTO meta VALUES('format_version', ?)", (str(FORMAT_VERSION),))
        elif int(version[0]) != FORMAT_VERSION:
            raise StorageError(f"{path}: store format {version[0]}, this bench-driver reads "
                               f"format {FORMAT_VERSION}; use the bench-driver that wrote it")
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: not a datagen store ({exc}); move it away") from None
    return db


class StreamStore:
    """The store of one taskid (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = connect(path)
        self._dropped = False  # this connection dropped a checkpoint

    def close(self) -> None:
        """Close the file; give back the space of dropped checkpoints once none is left (only
        after dropping one here: a store only read, e.g. for an estimate, is never rewritten)."""
        if self._dropped and \
                self.db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0:
            self.db.execute("VACUUM")
        self.db.close()

    def epochs_done(self, taskid: int, model_idx: int, dataset: str) -> int:
        """How many epochs of this model are stored with their checkpoint."""
        row = self.db.execute("SELECT MAX(epoch) FROM epochs WHERE taskid=? AND model_idx=? "
                              "AND dataset=?", (taskid, model_idx, dataset)).fetchone()
        return int(row[0] or 0)

    def checkpoint(self, taskid: int, model_idx: int, dataset: str) -> tuple[int, bytes] | None:
        """``(epoch, state)`` of the model's latest checkpoint, or None."""
        row = self.db.execute("SELECT epoch, state FROM checkpoints WHERE taskid=? AND "
                              "model_idx=? AND dataset=?", (taskid, model_idx, dataset)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def record_model(self, key: tuple[int, int, str], config: Any, seed: int,
                     params_m: float, flops_m: float) -> None:
        """The model's configuration, seed and costs (idempotent)."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO models VALUES(?,?,?,?,?,?,?)",
                            (*key, json.dumps(config), seed, params_m, flops_m))

    def record_epoch(self, key: tuple[int, int, str], epoch: int, values: dict[str, float],
                     state: bytes | None) -> None:
        """One epoch's metrics and the checkpoint after it, in one transaction (None: the
        schedule is done, the checkpoint is dropped)."""
        row = [values[c] for c in EPOCH_COLUMNS]
        with self.db:
            self.db.execute(f"INSERT OR REPLACE INTO epochs VALUES(?,?,?,?,"
                            f"{','.join('?' * len(row))})", (*key, epoch, *row))
            if state is None:
                self.db.execute("DELETE FROM checkpoints WHERE taskid=? AND model_idx=? AND "
                                "dataset=?", key)
                self._dropped = True
            else:
                self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES(?,?,?,?,?)",
                                (*key, epoch, state))

    def epoch_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every stored epoch: ``(taskid, model_idx, dataset, epoch, *EPOCH_COLUMNS)``."""
        yield from self.db.execute("SELECT * FROM epochs ORDER BY taskid, model_idx, dataset, "
                                   "epoch")

    def model_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every stored model: ``(taskid, model_idx, dataset, config JSON, seed, params_m,
        flops_m)``."""
        yield from self.db.execute("SELECT * FROM models ORDER BY taskid, model_idx, dataset")


def store_path(directory: Path, taskid: int) -> Path:
    """The store file of *taskid* in a profile's directory."""
    return directory / "store" / f"taskid-{taskid:05d}.sqlite"


def store_paths(directory: Path) -> list[Path]:
    """Every taskid's store in a profile's directory, in taskid order."""
    return sorted((directory / "store").glob("taskid-*.sqlite"))
