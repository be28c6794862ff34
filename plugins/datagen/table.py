"""``merge``: every taskid's store in one file, read back as a table with the NB201 table's API.

:func:`merge_stores` writes ``benchmark.sqlite`` (the ``models`` and ``epochs`` tables of the
stores, no checkpoints) atomically. :class:`GeneratedTable` reads it: the configurations in order
of first appearance by (taskid, model_idx) are the indices; models that drew the same
configuration are its training runs (per-seed trials); every epoch is held, so the evaluator
below gives BOHB real per-epoch fidelities and the simulated clock charges per-epoch seconds.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from driver.errors import DataError, did_you_mean
from driver.search import Config, Evaluator, SearchSpace, Trial, TrialResult
from plugins.datagen.store import EPOCH_COLUMNS, StreamStore, connect, store_paths

BENCHMARK_FILE = "benchmark.sqlite"
SPLITS = ("train", "x-valid")  # the training set, and the data set's evaluation split


def merge_stores(directory: Path, profile: dict[str, Any]) -> tuple[Path, int, int]:
    """Write *directory*/benchmark.sqlite from every store; ``(path, models, epochs)``."""
    paths = store_paths(directory)
    if not paths:
        raise DataError(f"{directory}: no stores to merge; run `bench-driver datagen NAME run "
                        f"--epochs E` first")
    target = directory / BENCHMARK_FILE
    tmp = directory / f".{BENCHMARK_FILE}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    merged = StreamStore(tmp)
    models = epochs = 0
    with merged.db:
        merged.db.execute("INSERT INTO meta VALUES('profile', ?)", (json.dumps(profile),))
        for path in paths:
            store = StreamStore(path)
            for row in store.model_rows():
                merged.db.execute("INSERT INTO models VALUES(?,?,?,?,?,?,?)", row)
                models += 1
            for row in store.epoch_rows():
                merged.db.execute(f"INSERT INTO epochs VALUES({','.join('?' * len(row))})", row)
                epochs += 1
            store.db.close()
    merged.close()
    os.replace(tmp, target)
    return target, models, epochs


@dataclass(frozen=True)
class GeneratedRun:
    """One trained model: a training run of its configuration, every epoch held."""

    taskid: int
    model_idx: int
    seed: int
    params_m: float
    flops_m: float
    epochs: tuple[dict[str, float], ...]  # epoch e (1-based) at [e - 1]

    def at(self, epoch: int | None) -> dict[str, float]:
        """The metrics after *epoch* (None: the last held); DataError past the last."""
        if epoch is None:
            return self.epochs[-1]
        if not 1 <= epoch <= len(self.epochs):
            raise DataError(f"taskid {self.taskid} model_idx {self.model_idx}: epoch {epoch!r} "
                            f"is not held (epochs 1..{len(self.epochs)})")
        return self.epochs[epoch - 1]

    def time_to(self, epoch: int | None) -> float:
        """Seconds of training and evaluation up to *epoch* (None: the last held)."""
        stop = len(self.epochs) if epoch is None else epoch
        return sum(e["train_time_s"] + e["eval_time_s"] for e in self.epochs[:stop])

    def get_train(self, epoch: int | None = None) -> dict[str, float]:
        """``{'accuracy': %, 'loss', 'time_s': cumulative}`` on the training set."""
        values = self.at(epoch)
        return {"accuracy": values["train_accuracy"], "loss": values["train_loss"],
                "time_s": self.time_to(epoch)}

    def get_eval(self, split: str = "x-valid", epoch: int | None = None) -> dict[str, float]:
        """``{'accuracy': %, 'loss', 'time_s': cumulative}`` on *split* (``x-valid``)."""
        if check_split(split) == "train":
            return self.get_train(epoch)
        values = self.at(epoch)
        return {"accuracy": values["valid_accuracy"], "loss": values["valid_loss"],
                "time_s": self.time_to(epoch)}

    def get_latency(self) -> float:
        """Seconds per evaluation batch, at the last epoch."""
        return self.epochs[-1]["latency_s"]


def check_split(split: str) -> str:
    """*split*, or a DataError naming the splits a generated table holds."""
    if split not in SPLITS:
        raise DataError(f"generated table: split {split!r}{did_you_mean(split, SPLITS)}; it holds "
                        f"{', '.join(SPLITS)} (x-valid = the data set's evaluation split)")
    return split


@dataclass(frozen=True)
class GeneratedResults:
    """Everything the table holds on one configuration (``query_meta_info_by_index``)."""

    table: GeneratedTable
    index: int
    arch_str: Any

    def get_metrics(self, dataset: str, split: str = "x-valid",
                    epoch: int | None = None) -> dict[str, float]:
        """Means over runs at *epoch* (None: each run's last): accuracy, loss, time_s."""
        runs = self.table.query_by_index(self.index, dataset).values()
        values = [run.get_eval(split, epoch) for run in runs]
        return {key: sum(v[key] for v in values) / len(values) for key in values[0]}

    def get_compute_costs(self, dataset: str) -> dict[str, float]:
        """``{'flops': millions, 'params': millions, 'latency': s (mean over runs)}``."""
        runs = list(self.table.query_by_index(self.index, dataset).values())
        return {"flops": runs[0].flops_m, "params": runs[0].params_m,
                "latency": sum(r.get_latency() for r in runs) / len(runs)}


class GeneratedTable:
    """A merged ``benchmark.sqlite`` with the NB201 table's API (see the module docstring)."""

    def __init__(self, path: str | Path, seed: int | None = 0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no merged table; run `bench-driver datagen NAME merge`")
        self.configs: list[Any] = []
        self._index: dict[str, int] = {}
        self._runs: dict[str, dict[int, list[GeneratedRun]]] = {}
        self._load()
        self._rng = random.Random(seed)
        self.used_time_s = 0.0

    def _load(self) -> None:
        db = connect(self.path)
        curves: dict[tuple[int, int, str], list[dict[str, float]]] = {}
        for taskid, model_idx, dataset, epoch, *values in db.execute(
                "SELECT * FROM epochs ORDER BY taskid, model_idx, dataset, epoch"):
            curves.setdefault((taskid, model_idx, dataset), []).append(
                dict(zip(EPOCH_COLUMNS, values)))
        for taskid, model_idx, dataset, config, seed, params_m, flops_m in db.execute(
                "SELECT * FROM models ORDER BY taskid, model_idx, dataset"):
            epochs = curves.get((taskid, model_idx, dataset))
            if epochs:
                index = self._add_config(json.loads(config))
                run = GeneratedRun(taskid, model_idx, seed, params_m, flops_m, tuple(epochs))
                self._runs.setdefault(dataset, {}).setdefault(index, []).append(run)
        db.close()
        if not self.configs:
            raise DataError(f"{self.path}: the merged table holds no trained epoch")

    def _add_config(self, config: Any) -> int:
        key = json.dumps(config, sort_keys=True)
        if key not in self._index:
            self._index[key] = len(self.configs)
            self.configs.append(config)
        return self._index[key]

    @property
    def datasets(self) -> tuple[str, ...]:
        """The data sets the table holds."""
        return tuple(self._runs)

    def __len__(self) -> int:
        return len(self.configs)

    def __getitem__(self, index: int) -> Any:
        return self.configs[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.configs)

    def query_index_by_arch(self, arch: Any) -> int:
        """The index of configuration *arch*, or -1 if the table does not hold it."""
        return self._index.get(json.dumps(arch, sort_keys=True), -1)

    def query_meta_info_by_index(self, index: int) -> GeneratedResults:
        """What the table holds on configuration *index*."""
        return GeneratedResults(self, index, self[index])

    def query_by_index(self, index: int, dataset: str) -> dict[int, GeneratedRun]:
        """The training runs of configuration *index* on *dataset*: ``{run: GeneratedRun}``."""
        runs = self._dataset(dataset).get(index)
        if runs is None:
            raise DataError(f"{self.path}: configuration {index} has no run on {dataset!r}")
        return dict(enumerate(runs))

    def _dataset(self, dataset: str) -> dict[int, list[GeneratedRun]]:
        if dataset not in self._runs:
            raise DataError(f"{self.path}: no data set {dataset!r}"
                            f"{did_you_mean(dataset, self._runs)}; it holds "
                            f"{', '.join(self._runs)}")
        return self._runs[dataset]

    def epochs(self, dataset: str) -> int:
        """The epochs every run on *dataset* holds."""
        return min(len(r.epochs) for runs in self._dataset(dataset).values() for r in runs)

    def find_best(self, dataset: str, split: str = "x-valid") -> tuple[int, float]:
        """``(index, mean accuracy at each run's last epoch)`` of the best configuration."""
        scores = {i: self.query_meta_info_by_index(i).get_metrics(dataset, split)["accuracy"]
                  for i in self._dataset(dataset)}
        best = max(scores, key=scores.__getitem__)
        return best, scores[best]

    def simulate_train_eval(self, arch: Any, dataset: str, cost_epochs: int | None = None,
                            account_time: bool = True) -> tuple[float, float, float, float]:
        """Pretend to train *arch* for *cost_epochs* (None: all held) with one random run:
        ``(valid accuracy at that epoch, latency_s, time_cost_s, total_time_s)``."""
        index = self.query_index_by_arch(arch)
        if index < 0:
            raise DataError(f"{self.path}: configuration {arch!r} is not in the table")
        runs = self.query_by_index(index, dataset)
        run = runs[self._rng.randrange(len(runs))]
        time_cost_s = run.time_to(cost_epochs)
        if account_time:
            self.used_time_s += time_cost_s
        return (run.get_eval("x-valid", cost_epochs)["accuracy"], run.get_latency(), time_cost_s,
                self.used_time_s)

    def reset_time(self) -> None:
        """Set the simulated clock back to 0."""
        self.used_time_s = 0.0

    def space(self) -> TableSpace:
        """The search space of the table's configurations (for any searcher)."""
        return TableSpace(self.configs)


class TableSpace(SearchSpace):
    """The configurations a table holds, as one categorical decision (so every searcher,
    BOHB and REINFORCE included, proposes only configurations the table can answer)."""

    name = "generated_table"

    def __init__(self, configs: Sequence[Any]) -> None:
        self.configs = list(configs)
        self._index = {json.dumps(c, sort_keys=True): i for i, c in enumerate(self.configs)}

    def sample(self, rng: random.Random) -> Config:
        return self.configs[rng.randrange(len(self.configs))]  # type: ignore[no-any-return]

    def mutate(self, config: Config, rng: random.Random) -> Config:
        """Another configuration of the table (they have no finer structure here)."""
        others = [c for c in self.configs if c != config] or self.configs
        return others[rng.randrange(len(others))]  # type: ignore[no-any-return]

    def neighbours(self, config: Config) -> Sequence[Config]:
        return [c for c in self.configs if c != config]

    def choices(self) -> Sequence[Sequence[Any]]:
        return [list(range(len(self.configs)))]

    def encode(self, config: Config) -> Sequence[int]:
        return [self._index[json.dumps(config, sort_keys=True)]]

    def decode(self, encoding: Sequence[int]) -> Config:
        return self.configs[encoding[0]]  # type: ignore[no-any-return]


class GeneratedTableEvaluator(Evaluator):
    """Looks trials up in a generated table: value = validation accuracy (%) of one random run
    at the trial's fidelity (epochs, None: all held), cost = that run's seconds to get there."""

    def __init__(self, table: GeneratedTable, dataset: str, seed: int | None = 0) -> None:
        self.table, self.dataset = table, dataset
        self.held_epochs = table.epochs(dataset)  # DataError for an unknown data set, now
        self._rng = random.Random(seed)

    def evaluate(self, trial: Trial) -> TrialResult:
        index = self.table.query_index_by_arch(trial.config)
        if index < 0:
            raise DataError(f"{self.table.path}: configuration {trial.config!r} is not in the "
                            f"table; search its own space (GeneratedTable.space()) or use the "
                            f"surrogate evaluator (source = this table) for other cells")
        runs = self.table.query_by_index(index, self.dataset)
        run = runs[self._rng.randrange(len(runs))]
        epoch = self.held_epochs if trial.fidelity is None else \
            min(self.held_epochs, max(1, round(trial.fidelity)))
        info = {"index": index, "epoch": epoch, "taskid": run.taskid, "model_idx": run.model_idx}
        return TrialResult(trial, run.get_eval("x-valid", epoch)["accuracy"], run.time_to(epoch),
                           info)

    def max_fidelity(self) -> float | None:
        """Every epoch the table holds."""
        return float(self.held_epochs)

    def min_fidelity(self) -> float | None:
        """One epoch."""
        return 1.0


def make_table_evaluator(space: SearchSpace | None = None, table: str = "",
                         dataset: str = "cifar10-valid", seed: int | None = 0) -> Evaluator:
    """The ``datagen`` evaluator: *table* is a merged ``benchmark.sqlite``."""
    if not table:
        raise DataError("the datagen evaluator needs table=PATH (a merged benchmark.sqlite, "
                        "`bench-driver datagen NAME merge` writes it)")
    return GeneratedTableEvaluator(GeneratedTable(table, seed), dataset, seed)

