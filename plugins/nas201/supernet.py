"""The NAS-Bench-201 supernet the weight-sharing algorithms share: every edge holds all five ops.

The macro structure is the evaluation network's (``plugins.nas201.network.MacroNetwork``: stem,
three stages, residual reductions with affine BN, head); each cell is a :class:`SearchCell`
whose ops use BatchNorm without affine parameters, with running statistics or without
(``track_running_stats``; NATS-Bench's "BN off" variant turns them off).

How a forward pass combines the ops of an edge is the *plan* it is given, one per algorithm:

* :class:`Mixture`: ``sum_i w[e, i] * op_i(x)`` (DARTS; SETN's architecture step);
* :class:`Path`: only the chosen op of each edge (RSPS, ENAS, SETN's weight step, evaluation);
* :class:`HardSample`: GDAS's straight-through one-hot: only the sampled op is computed.

``none`` adds zeros, so it is never computed (its weight still takes part in a softmax).
Importing this module imports torch.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from plugins.nas201.network import OPERATIONS, MacroNetwork
from plugins.nas201.space import EDGES, OPS

NONE = OPS.index("none")


class Plan:
    """How the ops of one edge combine in a forward pass (see the module docstring)."""

    def edge(self, k: int, x: torch.Tensor, ops: nn.ModuleList) -> torch.Tensor | None:
        """The output of edge *k* on input *x*, or None for zeros."""
        raise NotImplementedError


class Mixture(Plan):
    """A weighted sum of every op; *weights* is (edges, ops), e.g. ``softmax(alpha)``."""

    def __init__(self, weights: torch.Tensor) -> None:
        self.weights = weights

    def edge(self, k: int, x: torch.Tensor, ops: nn.ModuleList) -> torch.Tensor | None:
        """``sum_i w[k, i] * op_i(x)`` over the ops other than ``none``."""
        w = self.weights[k].unbind()  # the edge's weights as scalars, in one call
        total: torch.Tensor | None = None
        for i, op in enumerate(ops):
            if i != NONE:  # in place of a stack and a sum: no 4x-sized temporary
                out = op(x)  # then total + w * out in one fused operation (addcmul)
                total = w[i] * out if total is None else torch.addcmul(total, w[i], out)
        return total


class Path(Plan):
    """One op per edge: ``choice[k]`` is the index (in :data:`OPS`) of edge *k*'s op."""

    def __init__(self, choice: Sequence[int]) -> None:
        self.choice = tuple(int(c) for c in choice)

    def edge(self, k: int, x: torch.Tensor, ops: nn.ModuleList) -> torch.Tensor | None:
        """The chosen op's output; None (zeros) for ``none``."""
        index = self.choice[k]
        return None if index == NONE else ops[index](x)


class HardSample(Plan):
    """GDAS: *hard* (edges, ops) is a one-hot in value whose gradient is the soft probabilities'
    (straight-through); *index* the sampled op of each edge. Only that op is computed; the
    other weights (zero in value) are added so that their gradient reaches alpha, as the
    reference implementation does."""

    def __init__(self, hard: torch.Tensor, index: Sequence[int]) -> None:
        self.hard, self.index = hard, tuple(int(i) for i in index)

    def edge(self, k: int, x: torch.Tensor, ops: nn.ModuleList) -> torch.Tensor | None:
        """``hard[k, i] * op_i(x)`` for the sampled *i*, plus the others' (zero) weights."""
        i, w = self.index[k], self.hard[k]
        others = w.sum() - w[i]
        return others.expand_as(x) if i == NONE else w[i] * ops[i](x) + others


class SearchCell(nn.Module):
    """A cell whose six edges each hold the five ops (BN without affine parameters)."""

    def __init__(self, channels: int, track_running_stats: bool = True) -> None:
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleList(OPERATIONS[op](channels, False, track_running_stats) for op in OPS)
            for _ in EDGES
        )

    def forward(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:  # type: ignore[override]
        """Nodes in order, each the sum of its incoming edges as *plan* combines them."""
        nodes = [x]
        for node in range(1, 4):
            total: torch.Tensor | None = None
            for k, (source, target) in enumerate(EDGES):
                if target == node:
                    edge = self.edges[k]
                    assert isinstance(edge, nn.ModuleList)
                    out = plan.edge(k, nodes[source], edge)
                    if out is not None:
                        total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class Supernet(nn.Module):
    """The NB201 network with :class:`SearchCell` cells; ``forward(x, plan)`` returns logits.

    The architecture parameters are not part of it: each algorithm owns its own (alpha, a
    controller) and turns them into a :class:`Plan`.
    """

    def __init__(self, num_classes: int, channels: int = 16, cells_per_stage: int = 5,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        self.net = MacroNetwork(lambda width: SearchCell(width, track_running_stats),
                                num_classes, channels, cells_per_stage)

    def forward(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:  # type: ignore[override]
        """Logits of a batch ``(N, 3, H, W)`` under *plan*."""
        net = self.net
        x = net.stem(x)
        for block in net.blocks:
            x = block(x, plan) if isinstance(block, SearchCell) else block(x)
        return net.classifier(net.head(x).mean(dim=(2, 3)))

    def cells(self) -> list[SearchCell]:
        """The search cells, in order."""
        return [b for b in self.net.blocks if isinstance(b, SearchCell)]


def choice_to_ops(choice: Sequence[int]) -> tuple[str, ...]:
    """Op names of a choice of op indices (one per edge)."""
    return tuple(OPS[int(i)] for i in choice)
