"""Execution backends: where the runs of repetitions and experiments execute (``--jobs N``).

A backend runs :class:`RunJob` objects, each one run of the same pipeline a serial run uses
(:func:`driver.worker.execute` on the worker: the plugins the driver loaded, the task, the run
directory), and hands back each :class:`Finished` run as it completes. A loop submits jobs with
:meth:`Backend.submit` and waits for the next completion with :meth:`Backend.next_finished` (or
:func:`as_completed`), so that it can keep a fixed number of runs in flight.

Backends are plugins: ``bench_driver_register_backends`` returns ``{name: factory}``, and
``factory(options, jobs)`` makes the backend for one invocation (``options`` is the parsed command
line, where the backend reads the options it added through ``bench_driver_addoption``). The
driver itself schedules on one machine: at most ``--jobs`` runs at once, and GPUs leased from its
pool exclusively (:class:`Placement`); a backend whose own scheduler places GPUs (Ray, Slurm) says
so with ``places_gpus``.
"""

from __future__ import annotations

import argparse
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from driver.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from driver.benchmark import RunOptions
    from driver.config import TaskSpec
    from driver.guard import Guarded
    from driver.plugins import Plugins, PluginSet
    from driver.results import RunRecord

DEFAULT_BACKEND = "local"


@dataclass(frozen=True)
class RunJob:
    """One run for a backend: everything a worker needs, picklable (no callables, no streams)."""

    key: str  # unique in the invocation: the run directory
    label: str  # what the console calls it: ``exp/variant repetition 2``
    task: TaskSpec
    options: RunOptions  # run_dir, seed and repetition set; echo off; no on_start
    plugin_set: PluginSet  # what the driver loaded (drop-ins, -p): loaded on the worker too
    cwd: str  # the driver's working directory (relative paths of the task mean the same)
    gpus: int = 0  # GPUs the run needs


@dataclass(frozen=True)
class Placement:
    """Where the driver put a job on this machine."""

    devices: tuple[str, ...] = ()  # leased CUDA_VISIBLE_DEVICES entries (UUIDs once checked)
    keep_fds: tuple[int, ...] = ()  # descriptors the worker inherits (the experiment lock)


@dataclass(frozen=True)
class Finished:
    """A job that ended: its record, or why its worker gave none (it died, its node was lost)."""

    job: RunJob
    record: RunRecord | None
    failure: str | None = None
    host: str = ""  # where it ran, when the backend knows


class Backend(ABC):
    """Runs jobs somewhere. Only :meth:`submit` and :meth:`next_finished` are required."""

    #: True when the backend's own scheduler assigns GPUs (the driver then leases none).
    places_gpus: bool = False

    def check(self) -> None:
        """Refuse (ConfigError, exit 3) before anything starts when the backend cannot run
        (an unreachable cluster, no ``sbatch``, a missing extra: say the pip command)."""

    @abstractmethod
    def submit(self, job: RunJob, placement: Placement) -> None:
        """Start *job* (asynchronously): it must not block until the run ends."""

    @abstractmethod
    def next_finished(self, timeout_s: float) -> Finished | None:
        """The next job that ended, waiting at most *timeout_s*; None when none ended."""

    def cancel(self, signal_name: str) -> None:
        """The user asked to stop: pass *signal_name* on to every live run (each then records
        itself interrupted, and resumes later)."""

    def close(self) -> None:
        """Release what the backend holds (a cluster connection); called once at the end."""


def as_completed(backend: Backend, live: int, poll_s: float = 0.2) -> Iterator[Finished]:
    """Yield the next *live* completions of *backend* as they come (for ask/tell loops)."""
    while live > 0:
        finished = backend.next_finished(poll_s)
        if finished is not None:
            live -= 1
            yield finished


def make_backend(plugins: Plugins, name: str, options: argparse.Namespace, jobs: int) -> Guarded:
    """The backend *name* of the registry, made and checked (ConfigError when unknown)."""
    from driver.guard import instance_of

    known = plugins.registry("backends")
    if name not in known:
        raise ConfigError(f"--backend {name!r}: no such backend{did_you_mean(name, known)}; "
                          f"backends: {', '.join(sorted(known)) or '(none)'}")
    backend = plugins.get("backends", name).create(options, jobs,
                                                   returns=instance_of(Backend))
    backend.check()
    return backend


def log_tail(path: Path, lines: int, max_bytes: int = 64 << 10) -> list[str]:
    """The last *lines* lines of the log at *path*, trailing blanks dropped (read from its last
    *max_bytes* only: a run's log can be gigabytes), or [] when it cannot be read."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - max_bytes))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return []
    return text.strip().splitlines()[-lines:]


def check_jobs(jobs: int | None, backend: str) -> int:
    """``--jobs N``: a whole number >= 1. Without it: 1 on the local backend, and 0 (every run
    at once: the cluster queues them) on any other."""
    if jobs is None:
        return 1 if backend == DEFAULT_BACKEND else 0
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs}: expected a whole number of runs at once >= 1 "
                          f"(-j 2 runs two at a time)")
    return jobs
