"""SETN on the NAS-Bench-201 supernet (Dong & Yang, ICCV 2019): one-shot with a learnt sampler.

The weights train under a uniformly random cell per batch (no gradient clipping); alpha trains by
Adam under the mixture ``softmax(alpha)`` on the architecture half. To choose, the 100 cells of
highest log-probability under alpha are each scored on one validation batch (512 images) with
the shared weights, and the best is kept (also after every epoch, as the reference logs it).
"""

from __future__ import annotations

import functools
import itertools

import torch

from plugins.nas201.space import EDGES, OPS
from plugins.nas201.supernet import Path
from plugins.weight_sharing.loop import (
    AlphaStrategy, Batch, Choice, EpochStats, SearchData, WeightOptimizer, choose_by_score,
    random_choices,
)


@functools.lru_cache(maxsize=1)
def all_choices() -> torch.Tensor:
    """Every cell as op indices, (15625, 6), in enumeration order (edge 0->1 slowest)."""
    return torch.tensor(list(itertools.product(range(len(OPS)), repeat=len(EDGES))))


def top_by_log_probability(alpha: torch.Tensor, count: int) -> list[Choice]:
    """The *count* cells of highest ``sum_e log_softmax(alpha)[e, op_e]`` (stable order)."""
    cells = all_choices()
    logp = alpha.detach().cpu().log_softmax(-1)
    scores = logp[torch.arange(len(EDGES)), cells].sum(-1)
    best = torch.argsort(scores, descending=True, stable=True)[:count]
    return [tuple(int(i) for i in cells[j]) for j in best]


class SETN(AlphaStrategy):
    """``setn``: uniform paths for the weights, the mixture for alpha, top-k by log-probability
    scored on validation batches."""

    def step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats) -> None:
        """One iteration."""
        self.weight_step(batch, weights, stats, Path(random_choices(1, self.gen)[0]))
        self.arch_step(batch, stats, self.mixture())

    def current(self, data: SearchData, final: bool) -> Choice:
        """The best-scoring of the ``candidates`` most probable cells."""
        return choose_by_score(self, top_by_log_probability(self.alpha, self.settings.candidates),
                               data)
