"""GDAS on the NAS-Bench-201 supernet (Dong & Yang, CVPR 2019): Gumbel hard sampling.

Each forward pass draws, per edge, ``one_hot(argmax((log_softmax(alpha) + g) / tau))`` with
Gumbel noise ``g``; its value is the one-hot and its gradient the softmax's (straight-through),
and only the sampled op of each edge is computed (``plugins.nas201.supernet.HardSample``). Each
iteration: a weight step (clip 5), then an Adam step of alpha, each with its own sample. The
temperature falls linearly from 10 (first epoch) to 0.1 (last). The cell is the argmax of alpha.
"""

from __future__ import annotations

import torch

from plugins.nas201.supernet import HardSample
from plugins.weight_sharing.loop import AlphaStrategy, Batch, EpochStats, WeightOptimizer


class GDAS(AlphaStrategy):
    """``gdas``: weight step, then architecture step, each under a fresh hard sample."""

    def tau(self) -> float | None:
        """This epoch's temperature."""
        return self.settings.tau_at(self.epoch)

    def sample(self) -> HardSample:
        """A straight-through hard sample of alpha at this epoch's temperature (redrawn until
        finite, as the reference)."""
        tau = self.settings.tau_at(self.epoch)
        while True:
            noise = torch.empty(self.alpha.shape).exponential_(generator=self.gen)
            gumbel = -noise.log().to(self.alpha.device)
            probs = ((self.alpha.log_softmax(-1) + gumbel) / tau).softmax(-1)
            if bool(torch.isfinite(gumbel).all()) and bool(torch.isfinite(probs).all()):
                break
        index = probs.detach().argmax(-1)
        one_hot = torch.zeros_like(probs).scatter_(-1, index[:, None], 1.0)
        return HardSample(one_hot - probs.detach() + probs, index.tolist())

    def step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats) -> None:
        """One iteration."""
        self.weight_step(batch, weights, stats, self.sample())
        self.arch_step(batch, stats, self.sample())
