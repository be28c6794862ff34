"""The ``surrogate`` evaluator plugin: gradient-boosted trees fitted on a table (the NB201 data or
a generated one) as a drop-in objective for every searcher. See docs/datagen.md.

Importing this module is cheap: scikit-learn, scipy and numpy are imported when an evaluator is
made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.search import Evaluator


def make_evaluator(space: Any = None, source: str = "nb201", dataset: str = "cifar10-valid",
                   train_cells: int = 1000, seed: int = 0, encoding: str = "",
                   cost_epochs: float = 12) -> Evaluator:
    """The ``surrogate`` evaluator (:class:`plugins.surrogate.evaluator.SurrogateEvaluator`):
    *source* ``nb201`` (the NAS-Bench-201 data) or the path of a merged benchmark.sqlite."""
    from plugins.surrogate.evaluator import SurrogateEvaluator

    return SurrogateEvaluator(space, source, dataset, int(train_cells), int(seed), encoding,
                              float(cost_epochs))


@hookimpl
def bench_driver_register_evaluators() -> dict[str, Callable[..., Evaluator]]:
    return {"surrogate": make_evaluator}
