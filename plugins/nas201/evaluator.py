"""The ``nb201`` table evaluator: a trial's value is a tabulated validation accuracy, its cost the
tabulated training time, so a time-budgeted search over the table takes seconds.

Protocol (see docs/nas.md): the value of a trial is the 200-epoch validation accuracy (%) of one of
the cell's training runs, drawn at random as the official ``simulate_train_eval`` does; its cost is
that run's 200-epoch ``train_time`` scaled by ``cost_epochs / 200`` (default 12: the NAS-Bench-201
paper's searches were charged for 12-epoch training). The accuracy is never scaled: the data has no
accuracy before epoch 200.

Fidelity: the number of training runs averaged (1 to 3). ``Trial.fidelity=None`` means one run.
A trial at fidelity ``r`` returns the mean accuracy of ``r`` distinct runs (all the cell has, if
fewer) and costs the training time of every run used. This is the only fidelity the open data
supports honestly; multi-fidelity searchers (BOHB) use it as their budget.
"""

from __future__ import annotations

import random
from typing import Any

from driver.errors import ConfigError
from driver.search import Evaluator, SearchSpace, Trial, TrialResult
from plugins.nas201.data import FULL_EPOCHS
from plugins.nas201.space import arch_to_index
from plugins.nas201.table import columns

#: ``run``: one random training run's accuracy (the paper's protocol); ``mean``: the mean over runs
#: (noise-free, for checks against values computed from the table).
REWARDS = ("run", "mean")


class NB201Evaluator(Evaluator):
    """Looks trials up in the NAS-Bench-201 table of one data set; seeded, reproducible."""

    def __init__(
        self,
        space: SearchSpace | None = None,
        dataset: str = "cifar10-valid",
        seed: int | None = 0,
        cost_epochs: float = 12,
        reward: str = "run",
    ) -> None:
        if reward not in REWARDS:
            raise ConfigError(f"nb201 evaluator: reward={reward!r}; expected one of {REWARDS}")
        if not cost_epochs > 0:
            raise ConfigError(f"nb201 evaluator: cost_epochs={cost_epochs!r} must be > 0")
        self.dataset = dataset
        self.reward = reward
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
        """The most training runs a trial can average (3)."""
        return float(self._data.max_runs)

    def _runs(self, index: int, fidelity: float | None) -> list[int]:
        available = len(self._data.valid_accuracy[index])
        if fidelity is None or fidelity <= 1:
            return [self._rng.randrange(available)]
        wanted = min(available, max(1, round(fidelity)))
        return self._rng.sample(range(available), wanted)
