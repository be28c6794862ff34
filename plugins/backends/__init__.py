"""The built-in execution backends (``--backend NAME``, docs/backends.md).

* ``local``: worker subprocesses on this machine (:mod:`plugins.backends.local`);
* ``ray``: one Ray task per run, on a Ray cluster (:mod:`plugins.backends.ray_backend`, the
  ``ray`` extra);
* ``slurm``: one Slurm job per run through submitit (:mod:`plugins.backends.slurm`, the ``slurm``
  extra).

Each module is imported only when its backend is chosen, and ray or submitit only when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.backends import Backend

#: submitit's executors: sbatch, or its local one (each job a subprocess here, for tests)
EXECUTORS = ("slurm", "local")


def make_local(options: argparse.Namespace, jobs: int) -> Backend:
    """The local backend (worker subprocesses)."""
    from plugins.backends.local import LocalBackend

    return LocalBackend(options, jobs)


def make_ray(options: argparse.Namespace, jobs: int) -> Backend:
    """The Ray backend (one Ray task per run)."""
    from plugins.backends.ray_backend import RayBackend

    return RayBackend(options, jobs)


def make_slurm(options: argparse.Namespace, jobs: int) -> Backend:
    """The Slurm backend (one Slurm job per run, through submitit)."""
    from plugins.backends.slurm import SlurmBackend

    return SlurmBackend(options, jobs)


@hookimpl
def bench_driver_addoption(command: str, parser: argparse.ArgumentParser) -> None:
    if command != "run":
        return
    group = parser.add_argument_group("backends (docs/backends.md)")
    group.add_argument("--address", help="--backend ray: the Ray cluster (default: RAY_ADDRESS, "
                       "else a local cluster)")
    group.add_argument("--ray-retries", type=int, default=1, metavar="N",
                       help="--backend ray: retry a run whose worker or node died N times "
                       "(default 1)")
    group.add_argument("--ray-cpus-per-run", type=float, default=1.0, metavar="N",
                       help="--backend ray: CPUs each run's task asks for (default 1)")
    add_slurm_options(parser)


def add_slurm_options(parser: argparse.ArgumentParser) -> None:
    """The ``--slurm-*`` options of ``run``."""
    group = parser.add_argument_group("--backend slurm (docs/backends.md)")
    group.add_argument("--slurm-partition", help="the partition of every run's job")
    group.add_argument("--slurm-time-min", type=float, default=60.0, metavar="MIN",
                       help="time limit of every run's job, minutes (default 60)")
    group.add_argument("--slurm-cpus-per-run", type=int, default=1, metavar="N",
                       help="CPUs of every run's job (default 1)")
    group.add_argument("--slurm-gpus-per-run", type=int, metavar="N",
                       help="GPUs of every run's job (default: the run's num_gpus)")
    group.add_argument("--slurm-folder", type=Path, metavar="DIR",
                       help="submitit's job files and logs (default: RUNS_DIR/.slurm)")
    group.add_argument("--slurm-executor", choices=EXECUTORS, default="slurm",
                       help="slurm (sbatch), or local: submitit's local executor, each job a "
                       "subprocess here (testing without Slurm)")


@hookimpl
def bench_driver_register_backends() -> dict[str, Any]:
    return {"local": make_local, "ray": make_ray, "slurm": make_slurm}
