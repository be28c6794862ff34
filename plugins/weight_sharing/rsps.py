"""Random search with parameter sharing (RSPS; Li & Talwalkar, UAI 2019) on NAS-Bench-201.

The weights train under one uniformly random cell per batch (clip 5); there are no architecture
parameters. To choose, 100 random cells are each scored on one validation batch with the shared
weights and the best is kept (also after every epoch, as the reference does).
"""

from __future__ import annotations

import math

from plugins.nas201.space import OPS
from plugins.nas201.supernet import Path
from plugins.weight_sharing.loop import (
    Batch, Choice, EpochStats, SearchData, Strategy, WeightOptimizer, choose_by_score,
    random_choices,
)


class RSPS(Strategy):
    """``rsps``: uniform random paths; the best of random cells by validation accuracy."""

    def step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats) -> None:
        """A weight step under a uniformly random cell."""
        self.weight_step(batch, weights, stats, Path(random_choices(1, self.gen)[0]))

    def current(self, data: SearchData, final: bool) -> Choice:
        """The best-scoring of ``candidates`` random cells."""
        return choose_by_score(self, random_choices(self.settings.candidates, self.gen), data)

    def entropy(self) -> float:
        """The sampling distribution is uniform: ln 5 per edge."""
        return math.log(len(OPS))
