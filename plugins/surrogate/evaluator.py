"""The ``surrogate`` evaluator: a trial's value and cost are what the fitted trees predict.

Value: the predicted validation accuracy (%); with a table that has epochs (a generated one), at
the trial's fidelity in epochs (None: the table's last), so BOHB gets per-epoch fidelities.
Cost: the predicted seconds, ``time_s`` to that epoch (generated table), or the predicted 200-epoch
``train_time_s`` scaled by ``cost_epochs / 200`` (the NB201 data, as the ``nb201`` evaluator
charges). Predictions are deterministic: the same cell gives the same value, as ``reward='mean'``
of the table evaluator (the surrogate models the mean over runs, not one run's noise).
"""

from __future__ import annotations

from typing import Any, Callable

from driver.errors import ConfigError
from driver.search import Evaluator, SearchSpace, Trial, TrialResult
from plugins.surrogate.model import Rows, fit_with_quality, generated_rows, nb201_rows

NB201_EPOCHS = 200


class SurrogateEvaluator(Evaluator):
    """Fits a :class:`~plugins.surrogate.model.Surrogate` on *source* when made (``nb201``: the
    NAS-Bench-201 data; else the path of a merged ``benchmark.sqlite``), on *train_cells* cells
    drawn with *seed*; :attr:`quality` is measured on the other cells."""

    def __init__(self, space: SearchSpace | None = None, source: str = "nb201",
                 dataset: str = "cifar10-valid", train_cells: int = 1000, seed: int = 0,
                 encoding: str = "", cost_epochs: float = 12,
                 log: Callable[[str], None] | None = print) -> None:
        from plugins.surrogate.features import check_encoding

        if not cost_epochs > 0:
            raise ConfigError(f"surrogate evaluator: cost_epochs={cost_epochs!r} must be > 0")
        rows, self.space = self._rows(space, source, dataset)
        encoding = encoding or ("live" if self.space.name == "nb201" else "onehot")
        check_encoding(encoding)
        self.epochs = None if rows.epochs is None else max(rows.epochs)
        self.surrogate, self.quality = fit_with_quality(self.space, rows, encoding,
                                                        train_cells, seed)
        self._cost_scale = cost_epochs / NB201_EPOCHS
        self._cache: dict[int | None, dict[Any, tuple[float, float]]] = {}
        if log is not None:
            log(self.quality.line())

    @staticmethod
    def _rows(space: SearchSpace | None, source: str, dataset: str) -> tuple[Rows, SearchSpace]:
        from plugins.nas201.space import NB201Space

        if source == "nb201":
            return nb201_rows(dataset), space or NB201Space()
        from plugins.datagen.table import GeneratedTable

        table = GeneratedTable(source)
        if space is None:
            all_nb201 = all(isinstance(c, str) for c in table) and \
                all(NB201Space().__contains__(c) for c in table)
            space = NB201Space() if all_nb201 else table.space()
        return generated_rows(table, dataset), space

    def evaluate(self, trial: Trial) -> TrialResult:
        epoch = None if self.epochs is None else (
            self.epochs if trial.fidelity is None
            else min(self.epochs, max(1, round(trial.fidelity))))
        answers = self._answers(epoch)
        if trial.config not in answers:
            answers.update(self._predict([trial.config], epoch))
        value, cost_s = answers[trial.config]
        return TrialResult(trial, value, cost_s, {"predicted": True, "epoch": epoch})

    def _answers(self, epoch: int | None) -> dict[Any, tuple[float, float]]:
        """The predictions at *epoch*; for a space that lists its cells (NB201, a table's),
        all of them at once: one batch costs what about 50 single predictions cost."""
        if epoch not in self._cache:
            cells = self._cells()
            self._cache[epoch] = {} if cells is None else self._predict(cells, epoch)
        return self._cache[epoch]

    def _cells(self) -> list[Any] | None:
        from plugins.datagen.table import TableSpace
        from plugins.nas201.space import all_archs

        if isinstance(self.space, TableSpace):
            return self.space.configs
        return list(all_archs()) if self.space.name == "nb201" else None

    def _predict(self, configs: list[Any], epoch: int | None) -> dict[Any, tuple[float, float]]:
        epochs = None if epoch is None else [epoch] * len(configs)
        values = self.surrogate.predict("valid_accuracy", configs, epochs)
        if epoch is None:
            costs = [c * self._cost_scale
                     for c in self.surrogate.predict("train_time_s", configs)]
        else:
            costs = self.surrogate.predict("time_s", configs, epochs)
        return {c: (v, max(cost, 0.0)) for c, v, cost in zip(configs, values, costs)}

    def max_fidelity(self) -> float | None:
        """The table's epochs (None for the NB201 data: it has one fidelity)."""
        return None if self.epochs is None else float(self.epochs)

    def min_fidelity(self) -> float | None:
        """One epoch, when the table has epochs."""
        return None if self.epochs is None else 1.0

