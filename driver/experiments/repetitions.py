"""Repeated runs of one task (a *set*): warmups, repetitions, seeds, resuming, the summary.

A set is one task run ``warmup`` times, then ``repetitions`` times, each run in its own
directory of the set directory (``warmup-0``, ..., ``0``, ``1``, ...). Repetition ``i`` gets
``{repetition} = i`` and ``{seed} = base seed + i``; warmup ``j`` reuses repetition ``j``'s seed.
The set's ``summary.json`` (schema ``bench-driver/summary``) lists every run and, per metric, the
statistics of :mod:`driver.experiments.stats` over the measured repetitions whose command succeeded. A run
whose ``record.json`` says it finished is kept when the set runs again; an interrupted or killed
one is run again. Experiments (driver.experiments.matrix) run one set per variant.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from driver import results
from driver.benchmark import RunOptions, exit_code_for, run_benchmark
from driver.config import TaskSpec
from driver.errors import ConfigError
from driver.plugins import Plugins
from driver.experiments.stats import FINISHED, flat_from_summary, record_metas, run_entry, set_summary


@dataclass(frozen=True)
class RepeatPlan:
    """How a set runs: repetitions, warmup runs, the base seed and the reported statistic."""

    repetitions: int
    warmup: int = 0
    base_seed: int = 0
    statistic: str = "median"

    def slots(self) -> list[tuple[str, int, str]]:
        """``(kind, index, directory name)`` of every run, warmups first."""
        return [("warmup", j, f"warmup-{j}") for j in range(self.warmup)] + \
            [("repetition", i, str(i)) for i in range(self.repetitions)]


def run_set(
    task: TaskSpec,
    options: RunOptions,
    plugins: Plugins,
    set_dir: Path,
    plan: RepeatPlan,
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the set's unfinished runs into *set_dir* and write (and return) its summary.json.

    Stops at the first interrupted run (SIGINT/SIGTERM): the summary then says ``complete``
    false, and a later resume runs what is left.
    """
    runs: list[dict[str, Any]] = []
    metas: dict[str, dict[str, Any]] = {}
    for kind, index, dirname in plan.slots():
        seed = plan.base_seed + index
        doc = finished_record(set_dir / dirname, task, seed, index)
        resumed = doc is not None
        if doc is None:
            _progress(identity, task, kind, index, plan, seed)
            doc = _run_once(task, options, plugins, set_dir / dirname, seed, index)
        runs.append(run_entry(kind, index, seed, doc, resumed))
        metas.update(record_metas(doc))
        if doc.get("status") == results.INTERRUPTED:
            break
    kept = sum(1 for r in runs if r["resumed"])
    if kept:
        print(f"bench-driver: {_label(identity, task)}: kept {kept} finished run(s) from before",
              file=sys.stderr)
    who = identity or {}
    header = {"task": task.name, "experiment": who.get("experiment"),
              "variant": who.get("variant"), "values": dict(who.get("values", {})),
              "repetitions": plan.repetitions, "warmup": plan.warmup,
              "base_seed": plan.base_seed, "statistic": plan.statistic}
    summary = set_summary(header, runs, metas)
    results.write_json_atomic(set_dir / "summary.json", summary)
    return summary


def finished_record(run_dir: Path, task: TaskSpec, seed: int, index: int) -> dict[str, Any] | None:
    """The record of a finished run in *run_dir*, None if it must run (again).

    A finished run made with another command (the task, its parameters or the seed changed since)
    is an error, so that one set never mixes two configurations.
    """
    path = run_dir / "record.json"
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # never written, or not JSON: the run did not finish
    doc = results.load_record(path)  # a record of an unknown version is an error, not a rerun
    if doc.get("status") not in FINISHED:
        return None
    recorded = doc.get("params", {})
    now = task.render_command({**{k: recorded.get(k, "") for k in ("python", "num_gpus",
                                                                  "run_dir")},
                               "seed": seed, "repetition": index})
    if doc.get("command") != now:
        raise ConfigError(
            f"{path}: this finished run used another command than the experiment runs now:\n"
            f"  recorded: {doc.get('command')}\n  now:      {now}\nthe task, its parameters or "
            f"--seed changed since; pass --restart to discard the earlier runs of the selected "
            f"variants, or use another --runs-dir")
    return doc


def set_exit_code(summary: Mapping[str, Any]) -> int:
    """0 when every run of the set is ok; otherwise the exit code of its first run that is not."""
    for run in summary["runs"]:
        if run["status"] != results.OK:
            stand_in = results.RunRecord(task=summary["task"], command="", status=run["status"],
                                         exit_code=run["exit_code"], started_at="", ended_at="",
                                         duration_s=0.0, run_dir="", signal=run.get("signal"))
            return exit_code_for(stand_in)
    return 0


def _run_once(task: TaskSpec, options: RunOptions, plugins: Plugins, run_dir: Path, seed: int,
              index: int) -> dict[str, Any]:
    if run_dir.exists():  # what an interrupted or killed run left
        shutil.rmtree(run_dir)
    report = replace(options.report, output=run_dir / "result.json")
    once = replace(options, run_dir=run_dir, seed=seed, repetition=index, report=report)
    return run_benchmark(task, once, plugins).to_dict()


def _progress(identity: Mapping[str, Any] | None, task: TaskSpec, kind: str, index: int,
              plan: RepeatPlan, seed: int) -> None:
    total = plan.warmup if kind == "warmup" else plan.repetitions
    print(f"bench-driver: {_label(identity, task)}: {kind} {index + 1}/{total} (seed {seed})",
          file=sys.stderr, flush=True)


def _label(identity: Mapping[str, Any] | None, task: TaskSpec) -> str:
    return f"{identity['experiment']}/{identity['variant']}" if identity else task.name


def main_repeated(args: Any, task: TaskSpec, options: RunOptions, plugins: Plugins) -> int:
    """``bench-driver --task-name T --repetitions N [--warmup K]``: one set in a new directory."""
    from plugins import ci_report as ci_outputs
    from driver.benchmark import new_run_dir

    plan = plan_from_args(args, 1, 0)
    set_dir = new_run_dir(options.runs_dir, task.name)
    summary = run_set(task, options, plugins, set_dir, plan)
    report = options.report
    results.write_json_atomic(report.output, flat_from_summary(summary, report.framework,
                                                               report.metrics_suffix))
    ci_outputs.write_tables(set_dir, [summary])
    ci_outputs.publish_sets([summary], f"bench-driver: {task.name}", args.junit, args.markdown)
    print(f"bench-driver: summary: {set_dir / 'summary.json'}", file=sys.stderr)
    return set_exit_code(summary)


def plan_from_args(args: Any, repetitions: int, warmup: int) -> RepeatPlan:
    """``--repetitions``, ``--warmup`` (each overriding the given default), ``--seed``,
    ``--statistic``."""
    if args.repetitions is not None and args.repetitions < 1:
        raise ConfigError(f"--repetitions {args.repetitions}: expected a whole number >= 1")
    if args.warmup is not None and args.warmup < 0:
        raise ConfigError(f"--warmup {args.warmup}: expected a whole number >= 0")
    return RepeatPlan(args.repetitions or repetitions,
                      warmup if args.warmup is None else args.warmup, args.seed, args.statistic)
