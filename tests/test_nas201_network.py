"""The NAS-Bench-201 evaluation network in PyTorch: its counts against the pure-Python formulas
and the official records, its composition, and the reference implementation (xautodl 1.0.0)."""

from __future__ import annotations

import itertools
import random
import re
from typing import Iterator

import pytest
import torch
from torch import nn

from plugins.nas201 import costs
from plugins.nas201.network import (
    OPERATIONS, AvgPool3x3, Cell, ReLUConvBN, ResidualReduction, Zero, build_for_shape,
    build_network, count_flops, count_parameters,
)
from plugins.nas201.space import OPS, arch_string, index_to_arch
from test_nas201_costs import ALL_3X3, ALL_NONE, OFFICIAL, arch_of

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
REFERENCE_INSTALL = "pip install --no-deps xautodl==1.0.0"


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine two spinning OpenMP threads run ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one_cell_per_conv_count() -> list[str]:
    """Parameters and FLOPs depend only on how many 3x3 and 1x1 convs a cell has: one cell for
    each of the 28 combinations, the other edges filled with the parameter-free ops in turn."""
    free = ("none", "skip_connect", "avg_pool_3x3")
    cells = []
    for n3, n1 in itertools.product(range(7), repeat=2):
        if n3 + n1 <= 6:
            ops = ["nor_conv_3x3"] * n3 + ["nor_conv_1x1"] * n1
            ops += [free[k % 3] for k in range(6 - len(ops))]
            cells.append(arch_string(random.Random(n3 * 7 + n1).sample(ops, 6)))
    return cells


@pytest.mark.parametrize("dataset", DATASETS)
def test_built_networks_have_the_formulas_counts(dataset: str) -> None:
    shape = costs.shape_of(dataset)
    for arch in one_cell_per_conv_count():
        net = build_for_shape(arch, shape)
        assert count_parameters(net) == costs.param_count(arch, shape), arch
        assert count_flops(net, shape.image_size) == costs.flop_count(arch, shape), arch


@pytest.mark.parametrize(("cell", "dataset"), list(OFFICIAL))
def test_built_networks_match_the_official_records(cell: int | str, dataset: str) -> None:
    flops, params = OFFICIAL[cell, dataset]
    shape = costs.shape_of(dataset)
    net = build_for_shape(arch_of(cell), shape)
    assert count_parameters(net) / 1e6 == pytest.approx(params, abs=5e-7)
    assert count_flops(net, shape.image_size) / 1e6 == pytest.approx(flops, abs=5e-6)


def test_the_macro_structure() -> None:
    net = build_network(index_to_arch(0), num_classes=10)
    kinds = [type(b).__name__ for b in net.blocks]
    assert kinds == ["Cell"] * 5 + ["ResidualReduction"] + ["Cell"] * 5 + \
        ["ResidualReduction"] + ["Cell"] * 5
    stem_conv, stem_bn = net.stem
    assert (stem_conv.in_channels, stem_conv.out_channels, stem_conv.kernel_size,
            stem_conv.padding, stem_conv.bias) == (3, 16, (3, 3), (1, 1), None)
    assert isinstance(stem_bn, nn.BatchNorm2d) and len(net.stem) == 2  # no ReLU in the stem
    assert [type(m) for m in net.head] == [nn.BatchNorm2d, nn.ReLU]
    assert (net.classifier.in_features, net.classifier.out_features) == (64, 10)
    logits = net.eval()(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_the_operations_exact_composition() -> None:
    conv3 = OPERATIONS["nor_conv_3x3"](16, True, True)
    relu, conv, bn = conv3
    assert isinstance(relu, nn.ReLU) and not relu.inplace
    assert (conv.kernel_size, conv.padding, conv.stride, conv.bias) == ((3, 3), (1, 1), (1, 1),
                                                                         None)
    assert bn.affine and bn.track_running_stats
    conv1 = OPERATIONS["nor_conv_1x1"](16, True, True)[1]
    assert (conv1.kernel_size, conv1.padding) == ((1, 1), (0, 0))
    # without affine BN the conv has a bias (the supernet's setting)
    assert OPERATIONS["nor_conv_3x3"](8, False, False)[1].bias is not None
    pool = OPERATIONS["avg_pool_3x3"](16, True, True)
    assert isinstance(pool, AvgPool3x3) and not pool.count_include_pad
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 1, 1)
    # count_include_pad=False: a corner averages its 4 real pixels, not 9 with zeros
    corner = pool(torch.arange(9.0).view(1, 1, 3, 3))[0, 0, 0, 0]
    assert corner == pytest.approx((0 + 1 + 3 + 4) / 4)
    assert isinstance(OPERATIONS["skip_connect"](16, True, True), nn.Identity)
    assert isinstance(OPERATIONS["none"](16, True, True), Zero)
    assert set(OPERATIONS) == set(OPS)


def test_reduction_block_is_shortcut_plus_branch_without_a_final_relu() -> None:
    block = ResidualReduction(16, 32).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        out = block(x)
        expected = block.shortcut(x) + block.branch(x)
    assert torch.equal(out, expected) and out.shape == (2, 32, 4, 4)
    assert (out < 0).any()  # no ReLU after the sum
    first, second = block.branch
    assert isinstance(first, ReLUConvBN) and first[1].stride == (2, 2)
    assert second[1].stride == (1, 1)
    pool, conv = block.shortcut
    assert isinstance(pool, nn.AvgPool2d) and (pool.kernel_size, pool.stride) == (2, 2)
    assert conv.kernel_size == (1, 1) and conv.bias is None


def test_a_cell_sums_its_edges_node_by_node() -> None:
    """skip on 0->1 and 1->2, pool on 0->2, skip 0->3, none elsewhere: node3 = x."""
    cell = Cell(["skip_connect", "avg_pool_3x3", "skip_connect", "skip_connect", "none", "none"],
                4)
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(cell(x), x)
    zeros = Cell(["none"] * 6, 4)
    assert torch.equal(zeros(x), torch.zeros_like(x))


# --- the reference implementation ---------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> object:
    """xautodl's TinyNetwork and Structure; a missing install FAILS with the install line."""
    try:
        from xautodl.models.cell_infers.tiny_network import TinyNetwork
        from xautodl.models.cell_searchs.genotypes import Structure
        from xautodl.utils.flop_benchmark import get_model_infos
    except ImportError as exc:
        pytest.fail(f"the reference implementation is not installed ({exc}); install it with: "
                    f"{REFERENCE_INSTALL}")
    return TinyNetwork, Structure, get_model_infos


def reference_key_to_ours(key: str) -> str:
    """xautodl's parameter names -> ours (same tensors, different module names)."""
    for pattern, replacement in (
        (r"^cells\.", "blocks."), (r"\.layers\.(\d)\.op\.", r".edges.\1."),
        (r"\.conv_a\.op\.", ".branch.0."), (r"\.conv_b\.op\.", ".branch.1."),
        (r"\.downsample\.", ".shortcut."), (r"^lastact\.", "head."),
    ):
        key = re.sub(pattern, replacement, key)
    return key


def randomise(net: nn.Module, gen: torch.Generator) -> None:
    """Random weights and BN statistics, so that eval-mode outputs test every tensor."""
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.3)


def reference_cells() -> list[tuple[str, str]]:
    rng = random.Random(201)
    cells = [index_to_arch(rng.randrange(15_625)) for _ in range(22)] + [ALL_NONE, ALL_3X3]
    return [(arch, DATASETS[k % 3]) for k, arch in enumerate(cells)]


def test_the_reference_implementation_gives_identical_counts_and_outputs(reference) -> None:
    TinyNetwork, Structure, get_model_infos = reference
    gen = torch.Generator().manual_seed(0)
    for arch, dataset in reference_cells():
        shape = costs.shape_of(dataset)
        theirs = TinyNetwork(16, 5, Structure.str2structure(arch), shape.num_classes)
        ours = build_for_shape(arch, shape)
        assert count_parameters(theirs) == count_parameters(ours), arch
        randomise(theirs, gen)
        ours.load_state_dict({reference_key_to_ours(k): v for k, v in
                              theirs.state_dict().items()}, strict=True)
        x = torch.randn(4, 3, shape.image_size, shape.image_size, generator=gen)
        with torch.no_grad():
            expected, got = theirs.eval()(x)[1], ours.eval()(x)
        assert torch.equal(got, expected), (arch, dataset, (got - expected).abs().max())
        flops_m, params_mb = get_model_infos(theirs, (1, 3, shape.image_size, shape.image_size))
        assert flops_m == pytest.approx(count_flops(ours, shape.image_size) / 1e6, abs=1e-9)
        assert params_mb == pytest.approx(costs.param_count(arch, shape) / 1e6, abs=1e-12)
