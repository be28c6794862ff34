"""Black-box NAS searchers, registered through ``bench_driver_register_searchers``.

``rea`` (regularized evolution), ``reinforce``, ``bohb`` and ``local_search``; random search is
``random`` from :mod:`plugins.toy_search`. Every searcher is ask/tell (driver.search), seeded and
reproducible, and works on any space that offers what it needs: ``mutate`` (rea),
``neighbours`` (local_search), ``choices``/``encode``/``decode`` (reinforce, bohb). Importing this
package imports no numpy: BOHB's model imports it when first fitted.
"""

from __future__ import annotations

from driver.hookspecs import hookimpl
from driver.search import Searcher
from plugins.searchers.bohb import BOHB
from plugins.searchers.evolution import RegularizedEvolution
from plugins.searchers.local_search import LocalSearch
from plugins.searchers.reinforce import Reinforce

__all__ = ["BOHB", "LocalSearch", "RegularizedEvolution", "Reinforce"]


@hookimpl
def bench_driver_register_searchers() -> dict[str, type[Searcher]]:
    return {
        "rea": RegularizedEvolution,
        "reinforce": Reinforce,
        "bohb": BOHB,
        "local_search": LocalSearch,
    }
