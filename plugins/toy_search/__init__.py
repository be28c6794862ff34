"""Reference searcher plugin: random search, over a small toy space with a known optimum.

It is the shortest complete example of registry hooks: the hooks import their implementations
when called, so that loading the plugin costs nothing until a search needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.search import Searcher


@hookimpl
def bench_driver_register_searchers() -> dict[str, type[Searcher]]:
    from plugins.toy_search.random_search import RandomSearch

    return {"random": RandomSearch}


@hookimpl
def bench_driver_register_search_spaces() -> dict[str, Any]:
    from plugins.toy_search.space import ToySpace

    return {"toy": ToySpace}


@hookimpl
def bench_driver_register_evaluators() -> dict[str, Any]:
    from plugins.toy_search.space import ToyEvaluator

    return {"toy": ToyEvaluator}
