"""``bench-driver datagen NAME init|run|merge``: what each action does (the arguments are in
``plugins/datagen/__init__.py``, so that building the command line imports nothing more)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from driver.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from driver.config import TaskConfig
    from driver.plugins import Plugins
    from plugins.datagen.profile import Profile


def run_datagen(args: argparse.Namespace, plugins: Plugins) -> int:
    """``bench-driver datagen NAME ACTION``: read the profile, then do ACTION."""
    from driver.config import load_config
    from plugins.datagen.profile import profile_directory, profile_named

    config = load_config(args.config, plugins.registry("config_tables"))
    profile = profile_named(config.tables, config.path, args.profile)
    directory = profile_directory(profile, config.path)
    if args.action == "init":
        return _init(profile, directory, plugins)
    if args.action == "merge":
        return _merge(profile, directory)
    return _run(profile, directory, args, config, plugins)


def _init(profile: Profile, directory: Path, plugins: Plugins) -> int:
    from plugins.datagen.generate import init_profile

    registry = plugins.registry("search_spaces")
    if profile.space not in registry:
        from driver.errors import did_you_mean

        raise ConfigError(f"[datagen.{profile.name}] space = {profile.space!r}: no such search "
                          f"space{did_you_mean(profile.space, registry)}; registered: "
                          f"{', '.join(sorted(registry))}")
    space = plugins.get("search_spaces", profile.space).create()
    samples = init_profile(profile, directory, space)  # type: ignore[arg-type]  # guarded
    print(f"datagen {profile.name}: {len(samples)} samples ({profile.streams} taskid(s) from "
          f"{profile.first_taskid} x {profile.samples}) in {directory}")
    return ExitCode.OK


def _merge(profile: Profile, directory: Path) -> int:
    from plugins.datagen.table import merge_stores

    path, models, epochs = merge_stores(directory, profile.to_json())
    print(f"datagen {profile.name}: merged {models} model(s), {epochs} epoch(s) into {path}")
    return ExitCode.OK


def _run(profile: Profile, directory: Path, args: argparse.Namespace, config: TaskConfig,
         plugins: Plugins) -> int:
    from plugins.datagen.backend import (StreamsFailed, check_backend_args, open_streams,
                                         run_streams)
    from plugins.datagen.generate import check_epochs, read_samples
    from plugins.datagen.plan import describe, remaining, seconds_per_epoch

    if args.epochs is None:
        raise ConfigError(f"datagen {profile.name} run needs --epochs E (1..{profile.epochs})")
    check_epochs(profile, args.epochs)
    on_backend = check_backend_args(args)
    workers = 1 if args.workers is None else args.workers
    if workers < 1:
        raise ConfigError(f"--workers {workers}: expected a whole number >= 1")
    taskids = _taskids(profile, args.taskids)
    samples = read_samples(directory, taskids)
    rate = seconds_per_epoch(profile, directory, taskids)
    left = remaining(profile, directory, samples, args.epochs, rate)
    streams = open_streams(profile, directory, config, left, args, plugins) \
        if on_backend else None
    print(describe(profile, rate, left, args.epochs), flush=True)
    if args.emit_slurm is not None:
        return _emit_slurm(profile, left, args)
    failures = _train(profile, directory, taskids, args.epochs, workers) if streams is None \
        else run_streams(streams)
    rate = seconds_per_epoch(profile, directory, taskids)  # measured by this run too
    print(describe(profile, rate, remaining(profile, directory, samples, profile.epochs, rate),
                   profile.epochs), flush=True)
    if failures:
        raise StreamsFailed(f"datagen {profile.name}: {len(failures)} of {len(taskids)} "
                            f"stream(s) failed: {'; '.join(failures)}; the epochs they finished "
                            f"are stored: run again to continue them")
    return ExitCode.OK


def _taskids(profile: Profile, text: str | None) -> list[int]:
    if text is None:
        return list(profile.taskids)
    try:
        chosen = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--taskids {text!r}: expected whole numbers separated by commas, "
                          f"e.g. --taskids 0,3") from None
    outside = [t for t in chosen if t not in profile.taskids]
    if outside:
        raise ConfigError(f"--taskids {text!r}: {outside} not in profile {profile.name!r}'s "
                          f"taskids {profile.taskids.start}..{profile.taskids.stop - 1}")
    return chosen


def _train(profile: Profile, directory: Path, taskids: Sequence[int], epochs: int,
           workers: int) -> list[str]:
    """Train *taskids* in this process (or a pool of *workers*), then say how many epochs that
    was (the line a stream's run scrapes); nothing failed (an error raises)."""
    from plugins.datagen.backend import TRAINED_LINE

    trained = _trained(profile, directory, taskids, epochs, workers)
    print(TRAINED_LINE.format(name=profile.name, epochs=trained), flush=True)
    return []


def _trained(profile: Profile, directory: Path, taskids: Sequence[int], epochs: int,
             workers: int) -> int:
    from plugins.datagen.generate import run_stream

    if workers == 1 or len(taskids) == 1:
        return sum(run_stream(profile, directory, taskid, epochs, _print) for taskid in taskids)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")  # no forked torch threads
    with ProcessPoolExecutor(min(workers, len(taskids)), mp_context=context) as pool:
        futures = [pool.submit(run_stream, profile, directory, t, epochs, _print)
                   for t in taskids]
        return sum(future.result() for future in futures)


def _print(line: str) -> None:
    """One write per line: the lines of parallel workers on one pipe never mix."""
    import sys

    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _emit_slurm(profile: Profile, left: Sequence[object], args: argparse.Namespace) -> int:
    from driver.results import write_text_atomic
    from plugins.datagen.plan import pack_jobs, slurm_script

    jobs = pack_jobs(left, profile.job_hours * 3600)  # type: ignore[arg-type]
    for number, job in enumerate(jobs):
        text = slurm_script(profile, job, number, args.epochs, args.config, args.emit_slurm)
        write_text_atomic(args.emit_slurm / f"datagen-{profile.name}-{number}.sbatch", text)
    print(f"datagen {profile.name}: {len(jobs)} job script(s) in {args.emit_slurm} "
          f"(submit each with sbatch)")
    return ExitCode.OK
