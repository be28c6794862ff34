"""Generating NAS benchmark data as NEPSBench-101 (JAHS-Bench-201) does: the ``datagen`` plugin.

It owns the ``[datagen.NAME]`` tables of task_config.toml (checked when the config is read, so
``bench-driver check`` catches a bad profile), the ``bench-driver datagen NAME init|run|merge``
command and the ``datagen`` evaluator over a merged table. See docs/datagen.md.

Importing this module is cheap: numpy, torch and sqlite3 are imported by the code that uses them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from driver.commands import Command
from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.config import TaskConfig
    from driver.plugins import Plugins
    from driver.search import Evaluator


@hookimpl
def bench_driver_register_config_tables() -> dict[str, str]:
    return {"datagen": "sampling profiles for generating NAS benchmark data (bench-driver datagen)"}


@hookimpl
def bench_driver_configure(options: argparse.Namespace, config: TaskConfig | None) -> None:
    if config is not None and "datagen" in config.tables:  # no profile: nothing to import
        from plugins.datagen.profile import load_profiles

        load_profiles(config.tables, config.path)


class DatagenCommand(Command):
    """Generate NAS benchmark data for a ``[datagen.NAME]`` profile (docs/datagen.md)."""

    help = "generate NAS benchmark data for a [datagen.NAME] profile: init, run, merge"
    description = (
        "init: draw the profile's configurations and seeds into its directory; "
        "run --epochs E: train them to epoch E of the profile's schedule (continuing from "
        "checkpoints), in this process (--workers N), as one driver run per taskid on a backend "
        "(--backend local|ray|slurm, --jobs N), or with --emit-slurm DIR write Slurm job scripts "
        "packed by the measured estimate; merge: build the tabular benchmark (benchmark.sqlite) "
        "from the stores")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("profile", help="the NAME of a [datagen.NAME] table")
        parser.add_argument("action", choices=("init", "run", "merge"))
        parser.add_argument("--config", type=Path, default=Path("task_config.toml"),
                            help="task config file (default: ./task_config.toml)")
        parser.add_argument("--epochs", type=int, help="run: train up to this epoch")
        parser.add_argument("--workers", type=int,
                            help="run: taskids trained at once, one process each (default 1)")
        parser.add_argument("--taskids", help="run: only these taskids (e.g. 0,2,5)")
        parser.add_argument("--emit-slurm", type=Path, metavar="DIR",
                            help="run: write sbatch scripts to DIR instead of training")
        group = parser.add_argument_group("run on an execution backend (docs/datagen.md)")
        group.add_argument("--backend", help="run: each taskid's stream one driver run on this "
                           "backend (local, ray, slurm), in PROFILE_DIR/runs")
        group.add_argument("-j", "--jobs", type=int, metavar="N",
                           help="run: streams in flight (local default 1, ray/slurm: all)")
        group.add_argument("--backend-args", default="", metavar="'OPTIONS'",
                           help="run: the backend's options in one string, given with =: "
                           "--backend-args='--address HOST:PORT' or --backend-args='--slurm-"
                           "partition gpu --slurm-time-min 240'")

    def run(self, args: argparse.Namespace, plugins: Plugins) -> int:
        from plugins.datagen.command import run_datagen

        return run_datagen(args, plugins)


@hookimpl
def bench_driver_register_commands() -> dict[str, Command]:
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
