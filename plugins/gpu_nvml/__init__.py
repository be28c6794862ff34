"""The GPU sampler plugin: memory and utilisation of the task's GPUs through NVML (the reader and
the sampler are in :mod:`plugins.gpu_nvml.sampler`, imported only for a run that has GPUs, so
that a CPU run's start-up never loads the NVML code). It owns ``--no-gpu-sampling``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from driver.hookspecs import hookimpl

if TYPE_CHECKING:
    from driver.sampling import Sampler, SamplingSettings


def make_sampler(settings: SamplingSettings) -> Sampler | None:
    """The factory: None for a CPU run or with GPU sampling off; else the NVML sampler (see
    :func:`plugins.gpu_nvml.sampler.make_sampler`: ConfigError without NVML, for a GPU NVML
    cannot open, and for MIG)."""
    if not (settings.gpu_devices or settings.gpus) or settings.option("no_gpu_sampling", False):
        return None
    from plugins.gpu_nvml.sampler import make_sampler as make

    return make(settings)


def __getattr__(name: str) -> Any:
    """The sampler module's names (``GpuNvmlSampler``, ``RunningStats``...), imported on use."""
    if name.startswith("__") or name == "sampler":  # the import system asks for these first
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module("plugins.gpu_nvml.sampler"), name)


@hookimpl
def bench_driver_addoption(command: str, parser: argparse.ArgumentParser) -> None:
    if command == "run":
        parser.add_argument("--no-gpu-sampling", action="store_true",
                            help="do not sample GPUs via NVML (GPUs are handed over unchecked "
                            "where NVML is missing)")


@hookimpl
def bench_driver_register_samplers() -> dict[str, object]:
    return {"gpu_nvml": make_sampler}
