"""Black-box NAS searchers, registered through ``bench_driver_register_searchers``.

``rea`` (regularized evolution), ``reinforce``, ``bohb`` and ``local_search``; random search is
``random`` from :mod:`plugins.toy_search`. Every searcher is ask/tell (driver.search), seeded and
reproducible, and works on any space that offers what it needs: ``mutate`` (rea),
``neighbours`` (local_search), ``choices``/``encode``/``decode`` (reinforce, bohb). Importing this
package imports no numpy: BOHB's model imports it when first fitted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.search import Searcher


@hookimpl
def bench_driver_register_searchers() -> dict[str, type[Searcher]]:
    # imported here, when a search needs them, so that loading the plugin costs nothing
    from plugins.searchers.bohb import BOHB
    from plugins.searchers.evolution import RegularizedEvolution
    from plugins.searchers.local_search import LocalSearch
    from plugins.searchers.reinforce import Reinforce

    return {
        "rea": RegularizedEvolution,
        "reinforce": Reinforce,
        "bohb": BOHB,
        "local_search": LocalSearch,
    }
