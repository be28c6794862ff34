"""The weight-sharing NAS algorithms of NAS-Bench-201 as plugins: ``darts-v1``, ``darts-v2``,
``gdas``, ``setn``, ``enas``, ``rsps`` (``tasks/nas201_weight_sharing.py`` runs one).

Registering them imports no torch: the classes (``plugins.weight_sharing.algorithms``) are pure
Python and import their torch parts when a search runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.search import NASAlgorithm


@hookimpl
def bench_driver_register_nas_algorithms() -> dict[str, type[NASAlgorithm]]:
    from plugins.weight_sharing.algorithms import ALGORITHMS

    return dict(ALGORITHMS)
