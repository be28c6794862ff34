"""Parameters and FLOPs of a NAS-Bench-201 evaluation network, computed from its ops (pure Python).

The network (``plugins/nas201/network.py`` builds it in PyTorch) is fixed by the cell, the
benchmark data set (number of classes, input side) and two sizes: C channels (16) and N cells per
stage (5). Only convolutions, BatchNorm and the classifier have parameters, and NAS-Bench-201 counts
FLOPs of convolutions and linear layers only (``kh*kw*Cin*Cout*Hout*Wout``, no bias anywhere but the
classifier, whose FLOPs are ``in*out + out``), for one image. So both counts are sums of a few
closed-form terms, and the table can answer ``params`` and ``flops`` for all 15,625 cells without
torch. ``tests/test_nas201_network.py`` checks these formulas against the built network and the
official records.

Units as in NAS-Bench-201: ``params_mb`` is millions of parameters (the official "MB"), ``flops_m``
millions of FLOPs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from plugins.nas201.data import check_dataset
from plugins.nas201.space import all_archs, parse_arch

#: ``(classes, input side in pixels)`` of each benchmark data set.
BENCHMARK_SHAPES: dict[str, tuple[int, int]] = {
    "cifar10-valid": (10, 32),
    "cifar10": (10, 32),
    "cifar100": (100, 32),
    "ImageNet16-120": (120, 16),
}
CHANNELS = 16  # C: the first stage's width
CELLS_PER_STAGE = 5  # N
IN_CHANNELS = 3  # RGB
#: Per-pixel weights of a cell edge from C to C channels: kernel area (k*k), or 0 without weights.
_KERNEL_AREA = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}


@dataclass(frozen=True)
class NetworkShape:
    """What fixes a network's size besides its cell: classes, input side, C and N."""

    num_classes: int
    image_size: int
    channels: int = CHANNELS
    cells_per_stage: int = CELLS_PER_STAGE

    def stages(self) -> list[tuple[int, int]]:
        """``(channels, feature-map side)`` of the three stages: C, 2C, 4C at side S, S/2, S/4."""
        side = self.image_size
        stages = []
        for stage in range(3):
            stages.append((self.channels * 2**stage, side))
            side = (side + 1) // 2  # a 3x3 stride-2 conv with padding 1 rounds up
        return stages


def shape_of(dataset: str) -> NetworkShape:
    """The standard (C=16, N=5) network shape of benchmark *dataset*; DataError if unknown."""
    check_dataset(dataset)
    return NetworkShape(*BENCHMARK_SHAPES[dataset])


def _cell_kernel_area(arch: str) -> int:
    """The sum over the cell's edges of their kernel areas (9 per 3x3 conv, 1 per 1x1 conv)."""
    return sum(_KERNEL_AREA.get(op, 0) for op in parse_arch(arch))


def _cell_convs(arch: str) -> int:
    """How many of the cell's edges are convolutions (each has a BatchNorm of 2C parameters)."""
    return sum(op in _KERNEL_AREA for op in parse_arch(arch))


def param_count(arch: str, shape: NetworkShape) -> int:
    """Every trainable parameter of the network (conv weights, BN affine, classifier)."""
    c, n = shape.channels, shape.cells_per_stage
    area, convs = _cell_kernel_area(arch), _cell_convs(arch)
    total = 9 * IN_CHANNELS * c + 2 * c  # stem conv + BN
    widths = [width for width, _ in shape.stages()]
    for stage, width in enumerate(widths):
        total += n * (area * width * width + convs * 2 * width)
        if stage + 1 < len(widths):
            total += _reduction_params(width, widths[stage + 1])
    last = widths[-1]
    return total + 2 * last + last * shape.num_classes + shape.num_classes  # head BN + linear


def _reduction_params(c_in: int, c_out: int) -> int:
    """Residual reduction block: two 3x3 ReLU-Conv-BN and a bias-free 1x1 shortcut conv."""
    return (9 * c_in * c_out + 2 * c_out) + (9 * c_out * c_out + 2 * c_out) + c_in * c_out


def flop_count(arch: str, shape: NetworkShape) -> int:
    """FLOPs of one forward pass of one image, NAS-Bench-201's definition (convs and linear)."""
    c, n = shape.channels, shape.cells_per_stage
    area = _cell_kernel_area(arch)
    stages = shape.stages()
    total = 9 * IN_CHANNELS * c * shape.image_size**2  # stem
    for stage, (width, side) in enumerate(stages):
        total += n * area * width * width * side * side
        if stage + 1 < len(stages):
            out_width, out_side = stages[stage + 1]
            per_pixel = 9 * width * out_width + 9 * out_width * out_width + width * out_width
            total += per_pixel * out_side * out_side
    last = stages[-1][0]
    return total + last * shape.num_classes + shape.num_classes


def params_mb(arch: str, dataset: str) -> float:
    """Millions of parameters of *arch*'s standard network on *dataset* (NAS-Bench-201's "MB")."""
    return param_count(arch, shape_of(dataset)) / 1e6


def flops_m(arch: str, dataset: str) -> float:
    """Millions of FLOPs of one *dataset* image through *arch*'s standard network."""
    return flop_count(arch, shape_of(dataset)) / 1e6


@functools.lru_cache(maxsize=None)
def all_params_mb(dataset: str) -> tuple[float, ...]:
    """:func:`params_mb` of every cell on *dataset*, in official index order (cached)."""
    shape = shape_of(dataset)
    return tuple(param_count(arch, shape) / 1e6 for arch in all_archs())


@functools.lru_cache(maxsize=None)
def all_flops_m(dataset: str) -> tuple[float, ...]:
    """:func:`flops_m` of every cell on *dataset*, in official index order (cached)."""
    shape = shape_of(dataset)
    return tuple(flop_count(arch, shape) / 1e6 for arch in all_archs())
