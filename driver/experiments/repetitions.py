"""Repeated runs of one task (a *set*): warmups, repetitions, seeds, resuming, the summary.

A set is one task run ``warmup`` times, then ``repetitions`` times, each run in its own
directory of the set directory (``warmup-0``, ..., ``0``, ``1``, ...). Repetition ``i`` gets
``{repetition} = i`` and ``{seed} = base seed + i``; warmup ``j`` reuses repetition ``j``'s seed.
The set's ``summary.json`` (:class:`~driver.experiments.summary.SetSummary`) lists every run
and, per metric, the statistics of :mod:`driver.experiments.stats` over the measured repetitions
whose command succeeded. When a set runs again in the same directory (an experiment resuming), a
run whose record says it finished is kept, provided it measured exactly what the set measures now
(:func:`finished_record`); an interrupted or killed one is run again. Experiments
(:mod:`driver.experiments.matrix`) run one set per variant.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from driver import results
from driver.benchmark import RunOptions, new_run_dir, requested_gpus, run_benchmark
from driver.config import BUILTIN_PARAMS, TaskSpec
from driver.errors import BenchDriverError, ConfigError, ExitCode, PluginError
from driver.experiments.progress import Progress, status_text
from driver.experiments.summary import SetRun, SetSummary, record_metas
from driver.plugins import Plugins
from driver.report import publish
from driver.results import RunRecord

#: Variables of the task's environment that differ per run (the GPUs a run was leased).
PER_RUN_ENV = ("CUDA_VISIBLE_DEVICES",)


@dataclass(frozen=True)
class RepeatPlan:
    """How a set runs: repetitions, warmup runs, the base seed and the reported statistic."""

    repetitions: int
    warmup: int = 0
    base_seed: int = 0
    statistic: str = "median"
    keep_failed: bool = False  # resuming keeps finished runs that failed, instead of rerunning

    def slots(self) -> list[tuple[str, int, str]]:
        """``(kind, index, directory name)`` of every run, warmups first."""
        return [("warmup", j, f"warmup-{j}") for j in range(self.warmup)] + \
            [("repetition", i, str(i)) for i in range(self.repetitions)]


def run_set(task: TaskSpec, options: RunOptions, plugins: Plugins, set_dir: Path,
            plan: RepeatPlan, header: SetSummary | None = None,
            progress: Progress | None = None) -> SetSummary:
    """Run the set's unfinished runs into *set_dir*, write its summary.json, report it and
    return it. Stops at the first interrupted run: the summary then says ``complete`` false.

    *header* names the experiment and variant the set belongs to, if any; *progress* counts the
    runs (else each start is a line).
    """
    runs: list[tuple[SetRun, RunRecord]] = []
    for kind, index, dirname in plan.slots():
        seed = plan.base_seed + index
        record = finished_record(set_dir / dirname, task, options, seed, index, plan.keep_failed)
        resumed = record is not None
        if record is None:
            key = str(set_dir / dirname)
            if progress is None:
                _progress(header, task, kind, index, plan, seed)
            else:
                progress.started(key, f"{_label(header, task)} {kind} {index} (seed {seed})")
            record = _run_once(task, options, plugins, set_dir / dirname, seed, index)
            if progress is not None:
                progress.ended(key, status_text(record), record.status == results.OK)
        runs.append((SetRun.of(kind, index, seed, record, resumed), record))
        if record.status == results.INTERRUPTED or record.signal:  # the user asked to stop
            break
    return finish_set(task, set_dir, plan, runs, header)


def finish_set(task: TaskSpec, set_dir: Path, plan: RepeatPlan,
               runs: list[tuple[SetRun, RunRecord]], header: SetSummary | None) -> SetSummary:
    """The summary of the set's *runs* (each entry and its record, in slot order), saved into
    *set_dir*: the end of :func:`run_set`, and of a set run by a backend."""
    metas: dict[str, dict[str, Any]] = {}
    for _, record in runs:
        metas.update(record_metas(record))
    start = header or SetSummary(task.name, 0, 0, 0, "", (), {})
    summary = SetSummary.build(replace(start, task=task.name, repetitions=plan.repetitions,
                                       warmup=plan.warmup, base_seed=plan.base_seed,
                                       statistic=plan.statistic, directory=str(set_dir)),
                               [r for r, _ in runs], metas)
    summary.save(set_dir / "summary.json")
    return summary


def finished_record(run_dir: Path, task: TaskSpec, options: RunOptions, seed: int,
                    index: int, keep_failed: bool = False) -> RunRecord | None:
    """The record of a finished run in *run_dir*, None if it must run (again): a run that did
    not finish, or one that failed (any status but ``ok``) unless *keep_failed*.

    A finished run that measured something else than the set measures now (the command, a
    metric's pattern or compute method, a parameter, the task's environment or the number of
    GPUs changed) is an error naming what changed, so that one set never mixes two
    configurations. What differs per run by design ({seed}, {repetition}, {run_dir}, the GPUs
    a run was leased) is not compared.
    """
    record = earlier_record(run_dir)
    if record is None or not (keep_failed or record.status == results.OK):
        return None
    changes = _changes(record, task, options, seed, index)
    if changes:
        raise ConfigError(
            f"{run_dir / 'record.json'}: this finished run measured something else than the set "
            f"measures now:\n"
            + "".join(f"  {c}\n" for c in changes) + "pass --restart to discard the earlier "
            "runs of the selected variants, or use another --runs-dir")
    return record


def resume_sets(sets: Sequence[tuple[Path, TaskSpec]], options: RunOptions, plan: RepeatPlan,
                name: str) -> int:
    """Check the earlier runs of every set (directory, task) before running any (a stale one is
    an error), set aside those that failed, to be rerun (unless ``plan.keep_failed``), and say
    so for experiment *name*. Returns how many runs are kept."""
    kept = rerun = 0
    for set_dir, task in sets:
        for _, slot, dirname in plan.slots():
            if finished_record(set_dir / dirname, task, options, plan.base_seed + slot, slot,
                               plan.keep_failed) is not None:
                kept += 1
            elif earlier_record(set_dir / dirname) is not None:  # finished, but failed
                set_aside(set_dir / dirname)
                rerun += 1
    if kept or rerun:
        again = f"; rerunning {rerun} failed run(s) (their directories are kept as REP.failed-N;" \
            f" --keep-failed keeps failed runs instead)" if rerun else ""
        which = " (failed ones too: --keep-failed)" if plan.keep_failed else ""
        print(f"bench-driver: {name}: kept {kept} finished run(s) from before{which}{again}",
              file=sys.stderr)
    return kept


def earlier_record(run_dir: Path) -> RunRecord | None:
    """The record a finished run left in *run_dir*; None when there is none, the run did not
    finish, or it was killed while writing it. A record of another version is an error."""
    path = run_dir / "record.json"
    if not path.is_file():
        return None
    try:
        record = results.load_record(path)
    except ConfigError:
        if _unreadable(path):
            return None  # a run killed while writing its record: run it again
        raise  # a record of another version or kind is an error, not a rerun
    return record if record.finished else None


def set_aside(run_dir: Path) -> Path:
    """Rename a failed run's directory ``REP.failed-N`` (first free N), before it reruns: its
    log says why it failed, and resuming never destroys it."""
    n = 1
    while (aside := run_dir.with_name(f"{run_dir.name}.failed-{n}")).exists():
        n += 1
    run_dir.rename(aside)
    return aside


def _unreadable(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return False


def _changes(record: RunRecord, task: TaskSpec, options: RunOptions, seed: int,
             index: int) -> list[str]:
    """What differs between the recorded run and the run the set would make now."""
    gpus = requested_gpus(task, options)
    now = task.render_command({**{k: record.params.get(k, "") for k in ("python", "run_dir")},
                               "num_gpus": gpus, "seed": seed, "repetition": index})
    found = _differ("command", record.command, now) + _differ("num_gpus", record.num_gpus, gpus)
    recorded = {k: str(v) for k, v in record.params.items() if k not in BUILTIN_PARAMS}
    wanted = {k: str(v) for k, v in task.params.items()}
    found += [f"parameter {k}: recorded {recorded.get(k)!r}, now {wanted.get(k)!r}"
              for k in sorted(set(recorded) | set(wanted)) if recorded.get(k) != wanted.get(k)]
    found += _metric_changes(record, task)
    if record.task_env:  # records before schema version 2 did not keep it
        ignored = PER_RUN_ENV + ("CUDA_DEVICE_ORDER",)
        env = {k: v for k, v in record.task_env.items() if k not in ignored}
        found += _differ("task environment", env,
                         {k: v for k, v in task.env.items() if k not in ignored})
    return found


def _metric_changes(record: RunRecord, task: TaskSpec) -> list[str]:
    recorded = {m.name: m for m in record.metrics}
    found = _differ("metrics", sorted(recorded), sorted(m.name for m in task.metrics))
    for spec in task.metrics:
        old = recorded.get(spec.name)
        if old is None:
            continue
        for key in ("compute_method", "optional", "unit", "direction", "pattern"):
            before, after = getattr(old, key), getattr(spec, key)
            if key == "pattern" and not before:
                continue  # schema version 1 kept no pattern
            found += _differ(f"metric {spec.name!r} {key}", before, after)
    return found


def _differ(what: str, recorded: Any, now: Any) -> list[str]:
    return [] if recorded == now else [f"{what}: recorded {recorded!r}, now {now!r}"]


def fresh_run_dir(run_dir: Path) -> Path:
    """*run_dir*, emptied of what an interrupted or killed run left there."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    return run_dir


def _run_once(task: TaskSpec, options: RunOptions, plugins: Plugins, run_dir: Path, seed: int,
              index: int) -> RunRecord:
    once = options._replace(run_dir=fresh_run_dir(run_dir), seed=seed, repetition=index,
                            report=options.report._replace(in_set=True))
    return run_benchmark(task, once, plugins)


def _progress(header: SetSummary | None, task: TaskSpec, kind: str, index: int,
              plan: RepeatPlan, seed: int) -> None:
    total = plan.warmup if kind == "warmup" else plan.repetitions
    print(f"bench-driver: {_label(header, task)}: {kind} {index + 1}/{total} (seed {seed})",
          file=sys.stderr, flush=True)


def _label(header: SetSummary | None, task: TaskSpec) -> str:
    return header.label if header is not None and header.experiment else task.name


def report_errors(failures: list[BenchDriverError], code: int) -> int:
    """Print the reporters' errors; the exit code they make, unless *code* already says more."""
    for failure in failures:
        print(f"bench-driver: error: {failure}", file=sys.stderr)
    if not failures or code != ExitCode.OK:
        return code
    return ExitCode.PLUGIN if any(isinstance(f, PluginError) for f in failures) else \
        ExitCode.STORAGE


def main_repeated(args: Any, task: TaskSpec, options: RunOptions, plugins: Plugins) -> int:
    """``bench-driver --task-name T --repetitions N [--warmup K]``: one set in a new directory."""
    plan = plan_from_args(args, 1, 0)
    launch = launch_from(args, plugins)
    set_dir = new_run_dir(options.runs_dir, task.name)
    if launch is None:
        summary = run_set(task, options, plugins, set_dir, plan)
    else:
        from driver.experiments.parallel import SetToRun, run_sets

        try:
            summary = run_sets([SetToRun(task, set_dir)], options, plugins, plan,
                               launch.backend, launch.jobs)[0]
        finally:
            launch.backend.close()
    failures = publish(plugins, "report_set", summary, options.report)
    print(f"bench-driver: summary: {set_dir / 'summary.json'}", file=sys.stderr)
    if not summary.complete:
        print(f"bench-driver: the set is incomplete; its finished runs are kept in {set_dir} "
              f"(a new invocation starts a new set: sets resume inside experiments)",
              file=sys.stderr)
    return report_errors(failures, summary.exit_code())


@dataclass(frozen=True)
class Launch:
    """How runs go when ``--jobs`` or ``--backend`` is given: the (guarded) backend, and how
    many runs at once (0: all of them)."""

    backend: Any
    jobs: int


def launch_from(args: Any, plugins: Plugins) -> Launch | None:
    """The backend of ``--backend`` / ``--jobs``, made and checked before anything starts; None
    (runs in this process, one at a time) when neither is given."""
    from driver.backends import DEFAULT_BACKEND, check_jobs, make_backend

    if getattr(args, "jobs", None) is None and getattr(args, "backend", None) is None:
        return None
    name = args.backend or DEFAULT_BACKEND
    jobs = check_jobs(args.jobs, name)
    return Launch(make_backend(plugins, name, args, jobs), jobs)


def plan_from_args(args: Any, repetitions: int, warmup: int) -> RepeatPlan:
    """``--repetitions``, ``--warmup`` (each overriding the given default), ``--seed``,
    ``--statistic``."""
    if args.repetitions is not None and args.repetitions < 1:
        raise ConfigError(f"--repetitions {args.repetitions}: expected a whole number >= 1")
    if args.warmup is not None and args.warmup < 0:
        raise ConfigError(f"--warmup {args.warmup}: expected a whole number >= 0")
    return RepeatPlan(args.repetitions or repetitions,
                      warmup if args.warmup is None else args.warmup, args.seed, args.statistic,
                      bool(getattr(args, "keep_failed", False)))
