"""Generating NAS benchmark data as NEPSBench-101 (JAHS-Bench-201) does: the ``datagen`` plugin.

It owns the ``[datagen.NAME]`` tables of task_config.toml (checked when the config is read, so
``bench-driver check`` catches a bad profile), the ``bench-driver datagen NAME init|run|merge``
command and the ``datagen`` evaluator over a merged table. See docs/datagen.md.

Importing this module is cheap: numpy, torch and sqlite3 are imported by the code that uses them.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.commands import Command
    from driver.config import TaskConfig
    from driver.search import Evaluator


@hookimpl
def bench_driver_register_config_tables() -> dict[str, str]:
    return {"datagen": "sampling profiles for generating NAS benchmark data (bench-driver datagen)"}


@hookimpl
def bench_driver_configure(options: argparse.Namespace, config: TaskConfig | None) -> None:
    if config is not None:
        from plugins.datagen.profile import load_profiles

        load_profiles(config.tables, config.path)


@hookimpl
def bench_driver_register_commands() -> dict[str, Command]:
    from plugins.datagen.command import DatagenCommand

    return {"datagen": DatagenCommand()}


def make_evaluator(space: Any = None, table: str = "", dataset: str = "cifar10-valid",
                   seed: int | None = 0) -> Evaluator:
    """The ``datagen`` evaluator (:class:`plugins.datagen.table.GeneratedTableEvaluator`) over a
    merged ``benchmark.sqlite`` (option ``table=PATH``)."""
    from plugins.datagen.table import make_table_evaluator

    return make_table_evaluator(space, table, dataset, seed)


@hookimpl
def bench_driver_register_evaluators() -> dict[str, Callable[..., Evaluator]]:
    return {"datagen": make_evaluator}
