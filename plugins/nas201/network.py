"""NAS-Bench-201 networks in PyTorch: the five cell operations, the cell, the macro network.

The evaluation network of a cell (NAS-Bench-201's "TinyNetwork", C=16, N=5)::

    stem   3x3 conv (3 -> C, no bias) + BN
    stage  N cells at C;  residual reduction to 2C;  N cells at 2C;  reduction to 4C;  N cells at 4C
    head   BN + ReLU + global average pool + Linear(4C, classes)

A cell has 4 nodes: node 0 is its input, node j the sum of its edges i -> j, its output node 3.
A reduction block is ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN, plus a shortcut of 2x2 average
pooling (stride 2) and a bias-free 1x1 conv; no ReLU after the sum.

Pieces meant for reuse (the weight-sharing supernet builds on them): :data:`OPERATIONS` (op name ->
``factory(channels, affine, track_running_stats)``), :class:`ReLUConvBN`, :class:`ResidualReduction`
and :class:`MacroNetwork`, which takes any ``make_cell(channels) -> module``. The counters
:func:`count_parameters` and :func:`count_flops` measure a built model; ``plugins.nas201.costs``
gives the same numbers without torch.

Importing this module imports torch: the plugin imports it only when a network is built.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from plugins.nas201.costs import CELLS_PER_STAGE, CHANNELS, IN_CHANNELS, NetworkShape
from plugins.nas201.space import EDGES, parse_arch

#: ``factory(channels, affine, track_running_stats) -> module`` of one edge op (stride 1, C -> C).
OpFactory = Callable[[int, bool, bool], nn.Module]


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias when the BN is affine) -> BatchNorm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # the input may be another edge's input too: keep it intact
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=not affine),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the input's shape (multiplying keeps NaN/inf as the reference)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x * 0``."""
        return x.mul(0.0)


class AvgPool3x3(nn.AvgPool2d):
    """3x3 average pool, stride 1, padding 1, padded pixels left out of the mean."""

    def __init__(self) -> None:
        super().__init__(3, stride=1, padding=1, count_include_pad=False)


#: The NAS-Bench-201 operations inside a cell (C -> C, stride 1).
OPERATIONS: dict[str, OpFactory] = {
    "none": lambda c, affine, stats: Zero(),
    "skip_connect": lambda c, affine, stats: nn.Identity(),
    "nor_conv_1x1": lambda c, affine, stats: ReLUConvBN(c, c, 1, 1, affine, stats),
    "nor_conv_3x3": lambda c, affine, stats: ReLUConvBN(c, c, 3, 1, affine, stats),
    "avg_pool_3x3": lambda c, affine, stats: AvgPool3x3(),
}


class Cell(nn.Module):
    """One fixed cell: ``edges[k]`` is the op on edge :data:`EDGES[k]`; ``none`` edges are skipped
    (they add zeros), a node with only ``none`` inputs is zeros."""

    def __init__(self, ops: Sequence[str], channels: int, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise ValueError(f"a cell has {len(EDGES)} edges, got {len(ops)} ops: {ops!r}")
        self.ops = tuple(ops)
        self.edges = nn.ModuleList(
            OPERATIONS[op](channels, affine, track_running_stats) for op in self.ops
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Nodes in order; each the sum of its incoming non-``none`` edges."""
        nodes = [x]
        for node in range(1, 4):
            total: torch.Tensor | None = None
            for k, (source, target) in enumerate(EDGES):
                if target != node or self.ops[k] == "none":
                    continue
                out = self.edges[k](nodes[source])
                total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class ResidualReduction(nn.Module):
    """The block between stages: halves the side, changes the width (C_in -> C_out)."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True,
                 track_running_stats: bool = True) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            ReLUConvBN(c_in, c_out, 3, 2, affine, track_running_stats),
            ReLUConvBN(c_out, c_out, 3, 1, affine, track_running_stats),
        )
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shortcut plus branch, no activation after the sum."""
        return self.shortcut(x) + self.branch(x)


class MacroNetwork(nn.Module):
    """Stem, three stages of *cells_per_stage* cells made by *make_cell* (C, 2C, 4C) with residual
    reductions between them, and the classification head. ``forward`` returns logits."""

    def __init__(self, make_cell: Callable[[int], nn.Module], num_classes: int,
                 channels: int = CHANNELS, cells_per_stage: int = CELLS_PER_STAGE) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(IN_CHANNELS, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        blocks: list[nn.Module] = []
        for stage in range(3):
            width = channels * 2**stage
            if stage:
                blocks.append(ResidualReduction(width // 2, width))
            blocks.extend(make_cell(width) for _ in range(cells_per_stage))
        self.blocks = nn.ModuleList(blocks)
        last = channels * 4
        self.head = nn.Sequential(nn.BatchNorm2d(last), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch ``(N, 3, H, W)``."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        # mean, not AdaptiveAvgPool2d: its CUDA backward has no deterministic implementation
        return self.classifier(self.head(x).mean(dim=(2, 3)))


def build_network(arch: str, num_classes: int, channels: int = CHANNELS,
                  cells_per_stage: int = CELLS_PER_STAGE) -> MacroNetwork:
    """The evaluation network of *arch* (an arch string): affine BN with running statistics."""
    ops = parse_arch(arch)
    return MacroNetwork(lambda width: Cell(ops, width), num_classes, channels, cells_per_stage)


def build_for_shape(arch: str, shape: NetworkShape) -> MacroNetwork:
    """:func:`build_network` at the sizes of *shape* (from ``plugins.nas201.costs.shape_of``)."""
    return build_network(arch, shape.num_classes, shape.channels, shape.cells_per_stage)


def count_parameters(model: nn.Module) -> int:
    """Every parameter (BN affine and classifier included), as NAS-Bench-201 counts them."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, image_size: int, in_channels: int = IN_CHANNELS) -> int:
    """FLOPs of one forward pass of one image: convolutions ``kh*kw*Cin/groups*Cout*Hout*Wout``
    (+ ``Cout*Hout*Wout`` with a bias) and linear layers ``in*out`` (+ ``out``); pooling,
    BN and activations are not counted (NAS-Bench-201's definition)."""
    total = [0]

    def conv_hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        pixels = output.shape[2] * output.shape[3]
        total[0] += kh * kw * module.in_channels // module.groups * module.out_channels * pixels
        if module.bias is not None:
            total[0] += module.out_channels * pixels

    def linear_hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        assert isinstance(module, nn.Linear)
        total[0] += module.in_features * module.out_features
        if module.bias is not None:
            total[0] += module.out_features

    hooks = [m.register_forward_hook(conv_hook) for m in model.modules()
             if isinstance(m, nn.Conv2d)]
    hooks += [m.register_forward_hook(linear_hook) for m in model.modules()
              if isinstance(m, nn.Linear)]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, in_channels, image_size, image_size, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total[0]
