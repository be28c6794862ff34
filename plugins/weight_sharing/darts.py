"""DARTS on the NAS-Bench-201 supernet (Liu et al., ICLR 2019), first and second order.

Both train the weights under the mixture ``softmax(alpha)`` on the weight half and alpha by Adam
on the architecture half; the cell is the argmax of alpha per edge (``none`` included).

* :class:`FirstOrder` (``darts-v1``): a weight step, then an architecture step.
* :class:`SecondOrder` (``darts-v2``): the architecture step first, on the unrolled model
  ``w' = w - lr * (momentum * buf + dL_train/dw + wd * w)`` (one virtual SGD step, as the
  reference), with ``dL_val(w', alpha)/dalpha - lr * H v``, where the Hessian-vector product
  ``H v = d2 L_train / dalpha dw . v`` (``v = dL_val/dw'``) is a central finite difference at
  ``w +- R v``, ``R = r / |v|``; then the weight step. The virtual step runs on the same module
  through ``torch.func.functional_call``: no copy of the model.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from plugins.nas201.supernet import Mixture
from plugins.weight_sharing.loop import AlphaStrategy, Batch, EpochStats, WeightOptimizer


class FirstOrder(AlphaStrategy):
    """DARTS-V1: weight step, then architecture step, both under the mixture."""

    def step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats) -> None:
        """One iteration."""
        self.weight_step(batch, weights, stats, self.mixture(detach=True))
        self.arch_step(batch, stats, self.mixture())


class SecondOrder(AlphaStrategy):
    """DARTS-V2: the unrolled architecture step, then the weight step."""

    def step(self, batch: Batch, weights: WeightOptimizer, stats: EpochStats) -> None:
        """One iteration."""
        self.adam.zero_grad(set_to_none=True)
        logits = self.unrolled_gradient(batch, weights)
        self.adam.step()
        stats.add_arch(logits, batch.arch_y)
        self.weight_step(batch, weights, stats, self.mixture(detach=True))

    def unrolled_gradient(self, batch: Batch, weights: WeightOptimizer) -> torch.Tensor:
        """Set ``alpha.grad`` to the second-order gradient; return the unrolled model's logits."""
        names, params = zip(*self.net.named_parameters())
        loss = F.cross_entropy(self.net(batch.x, self.mixture(detach=True)), batch.y)
        grads = torch.autograd.grad(loss, params)
        virtual = self._virtual_step(params, grads, weights)
        buffers = {name: b.clone() for name, b in self.net.named_buffers()}  # keep the real stats
        logits = functional_call(self.net, {**dict(zip(names, virtual)), **buffers},
                                 (batch.arch_x, self.mixture()))
        dalpha, *vector = torch.autograd.grad(F.cross_entropy(logits, batch.arch_y),
                                              [self.alpha, *virtual])
        hessian_vector = self._hessian_vector(params, vector, batch)
        self.alpha.grad = dalpha - weights.lr * hessian_vector
        return logits.detach()

    @torch.no_grad()
    def _virtual_step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor],
                      weights: WeightOptimizer) -> list[torch.Tensor]:
        lr, wd = weights.lr, self.settings.weight_decay
        virtual = []
        for p, g in zip(params, grads):
            buf = weights.sgd.state.get(p, {}).get("momentum_buffer")
            step = g + wd * p if buf is None else g + wd * p + self.settings.momentum * buf
            virtual.append((p - lr * step).requires_grad_())
        return virtual

    def _hessian_vector(self, params: Sequence[torch.Tensor], vector: Sequence[torch.Tensor],
                        batch: Batch) -> torch.Tensor:
        norm = torch.cat([v.flatten() for v in vector]).norm()
        if float(norm) == 0.0:
            return torch.zeros_like(self.alpha)
        radius = self.settings.unroll_r / norm
        _shift(params, vector, radius)
        plus = self._train_alpha_gradient(batch)
        _shift(params, vector, -2 * radius)
        minus = self._train_alpha_gradient(batch)
        _shift(params, vector, radius)
        return (plus - minus) / (2 * radius)

    def _train_alpha_gradient(self, batch: Batch) -> torch.Tensor:
        loss = F.cross_entropy(self.net(batch.x, Mixture(self.alpha.softmax(-1))), batch.y)
        (grad,) = torch.autograd.grad(loss, [self.alpha])
        return grad


@torch.no_grad()
def _shift(params: Sequence[torch.Tensor], vector: Sequence[torch.Tensor],
           scale: torch.Tensor) -> None:
    for p, v in zip(params, vector):
        p.add_(v * scale)
