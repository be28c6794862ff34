"""Experiment tables, matrix expansion, repeated runs, resuming after SIGKILL, and the lock."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from driver.config import load_config
from driver.errors import ConfigError
from driver.experiments.repetitions import RepeatPlan
from driver.experiments.matrix import (build_variants, experiment_lock, load_experiment,
                               select_points, variant_name)

METHODS = {"last": None, "average": None}

# A task whose values depend on {seed}: speed 100 + 10 * seed (1000 for seed 4), loss 1/(seed+1).
# It appends "TAG REP start|end" to runs.log; it can fail (--fail-at REP), hang once to be killed
# (--block-at REP --block-tag TAG) or wait for a file named "release" (--wait-at REP).
TOY = """
import argparse, os, sys, time
p = argparse.ArgumentParser()
for name in ("--seed", "--rep", "--fail-at", "--block-at", "--wait-at"):
    p.add_argument(name, type=int, default=-1)
p.add_argument("--tag", default="")
p.add_argument("--block-tag", default="")
p.add_argument("--mult", type=float, default=1.0)
a = p.parse_args()
def log(what):
    with open("runs.log", "a") as f:
        f.write(f"{a.tag} {a.rep} {what}\\n")
log("start")
blocking = a.rep == a.block_at and a.tag == a.block_tag and not os.path.exists("blocked-once")
if blocking:
    open("blocked-once", "w").close()
print(f"started {a.tag} {a.rep} pid={os.getpid()}", flush=True)
if blocking:
    time.sleep(120)  # the test kills the driver (the watchdog then this process)
while a.rep == a.wait_at and not os.path.exists("release"):
    time.sleep(0.02)
print(f"speed: {(1000 if a.seed == 4 else 100 + 10 * a.seed) * a.mult}")
print(f"loss: {1 / (a.seed + 1)}")
log("end")
sys.exit(3 if a.rep == a.fail_at else 0)
"""

CONFIG = """
[tasks.toy]
command_to_execute = "{{python}} toy.py --seed {{seed}} --rep {{repetition}} --tag {{tag}} --mult {{mult}} --fail-at {{fail_at}} --block-at {{block_at}} --block-tag {{block_tag}} --wait-at {{wait_at}}"
patterns = ['^speed: (\\S+)', '^loss: (\\S+)']
metrics = ['speed', 'loss']
compute_method = ['last', 'last']
[tasks.toy.params]
tag = "x"
mult = 1
fail_at = -1
block_at = -1
block_tag = ""
wait_at = -1
{extra}
"""


@pytest.fixture
def toy(tmp_path: Path, write_config):
    (tmp_path / "toy.py").write_text(TOY)

    def write(extra: str = "") -> Path:
        return write_config(CONFIG.format(extra=textwrap.dedent(extra)))

    return write


def experiment(toy, table: str):
    config = load_config(toy(table))
    return config, load_experiment(config, "grid", METHODS)


def runs_log(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs.log").read_text().splitlines()


# --- the [experiments.NAME] table ---------------------------------------------------------------


def test_matrix_expands_in_order_with_readable_names(toy):
    config, spec = experiment(toy, """
        [experiments.grid]
        task = "toy"
        repetitions = 2
        params = { fail_at = 7 }
        [experiments.grid.matrix]
        tag = ["rea", "random"]
        mult = [1, 2.5]
    """)
    points = select_points(spec)
    assert [variant_name(p) for p in points] == [
        "tag=rea,mult=1", "tag=rea,mult=2.5", "tag=random,mult=1", "tag=random,mult=2.5"]
    variants = build_variants(config, spec, METHODS, {"block_at": "9"}, points)
    params = variants[1].task.params
    assert (params["tag"], params["mult"], params["fail_at"], params["block_at"]) == (
        "rea", "2.5", "7", "9")
    assert spec.repetitions == 2 and spec.warmup == 0


def test_benchmark_varies_one_key_and_fixes_the_others(toy):
    _, spec = experiment(toy, """
        [experiments.grid]
        task = "toy"
        [experiments.grid.matrix]
        tag = ["a", "b", "c"]
        mult = [1, 2]
        fail_at = [5, 6]
    """)
    names = [variant_name(p) for p in select_points(spec, "tag")]
    assert names == ["tag=a,mult=1,fail_at=5", "tag=b,mult=1,fail_at=5", "tag=c,mult=1,fail_at=5"]
    names = [variant_name(p) for p in select_points(spec, "mult", {"fail_at": "6"})]
    assert names == ["tag=a,mult=1,fail_at=6", "tag=a,mult=2,fail_at=6"]
    assert len(select_points(spec, None, {"tag": "b"})) == 4
    with pytest.raises(ConfigError, match=r"--benchmark 'tga'.*did you mean 'tag'"):
        select_points(spec, "tga")
    with pytest.raises(ConfigError, match=r"--fix tag=d: 'd' is not in matrix.tag"):
        select_points(spec, None, {"tag": "d"})
    with pytest.raises(ConfigError, match="is the --benchmark key"):
        select_points(spec, "tag", {"tag": "a"})


def test_names_are_safe_for_directories():
    assert variant_name({}) == "default"
    assert variant_name({"data": "a/b c", "flag": True}) == "data=a_b_c,flag=true"


@pytest.mark.parametrize("table, message", [
    ('task = "toy"\nmatrix = { tga = ["a"] }',
     r"\[experiments.grid\] matrix.tga: task 'toy' has no parameter 'tga' "
     r"\(did you mean 'tag'\?\)"),
    ('task = "toy"\nmatrix = { seed = [1, 2] }', r"'seed' is a built-in parameter"),
    ('task = "toy"\nmatrix = { tag = [] }', r"matrix.tag = \[\]: expected a non-empty list"),
    ('task = "toy"\nmatrix = { tag = "a" }', r"matrix.tag = 'a': expected a non-empty list"),
    ('task = "toy"\nmatrix = { tag = [["a"]] }', r"expected a non-empty list of strings"),
    ('task = "toy"\nmatrix = { tag = ["a", "a"] }', r"a value is listed twice"),
    ('task = "toy"\nmatrix = { tag = ["a/b", "a_b"] }', r"share the directory name"),
    ('task = "tyo"', r"task = 'tyo': expected the name of a \[tasks.NAME\] \(did you mean 'toy'"),
    ('task = "toy"\nrepetitons = 3', r"unknown key 'repetitons' \(did you mean 'repetitions'"),
    ('task = "toy"\nrepetitions = 0', r"repetitions = 0: expected a whole number >= 1"),
    ('task = "toy"\nwarmup = true', r"warmup = True: expected a whole number >= 0"),
    ('task = "toy"\nmatrix = { tag = ["a"] }\nparams = { tag = "b" }', r"also a matrix key"),
    ('task = "toy"\nparams = { bogus = 1 }', r"params.bogus: task 'toy' has no parameter"),
])
def test_experiment_table_is_validated(toy, table, message):
    config = load_config(toy("[experiments.grid]\n" + table))
    with pytest.raises(ConfigError, match=message):
        load_experiment(config, "grid", METHODS)


def test_unknown_experiment_and_set_on_a_matrix_key(toy):
    config, spec = experiment(toy, '[experiments.grid]\ntask = "toy"\nmatrix = { tag = ["a"] }')
    with pytest.raises(ConfigError, match=r"no experiment 'gird' \(did you mean 'grid'\?\)"):
        load_experiment(config, "gird", METHODS)
    with pytest.raises(ConfigError, match="use --fix tag=VALUE|choose its values with --fix"):
        build_variants(config, spec, METHODS, {"tag": "b"}, select_points(spec))


def test_plan_runs_warmups_first():
    assert RepeatPlan(2, 1).slots() == [("warmup", 0, "warmup-0"), ("repetition", 0, "0"),
                                        ("repetition", 1, "1")]


def test_lock_refuses_a_second_holder(tmp_path):
    with experiment_lock(tmp_path / "exp"):
        with pytest.raises(ConfigError, match=f"being run by process {os.getpid()}"):
            with experiment_lock(tmp_path / "exp"):
                pass
    with experiment_lock(tmp_path / "exp"):  # released
        pass


# --- end to end: the real CLI -------------------------------------------------------------------


def test_repetitions_report_statistics_and_keep_every_run(toy, cli, tmp_path):
    toy()
    run = cli("--task-name", "toy", "--repetitions", "5", "--warmup", "1", "--seed", "0",
              "--framework", "f", "--metrics-suffix", "s")
    assert run.returncode == 0, run.stderr
    assert run.result["f.toy.speed.s"] == 120.0  # median of 100 110 120 130 1000
    summary = json.loads(next(tmp_path.glob("bench-runs/toy/*/summary.json")).read_text())
    assert summary["schema"] == "bench-driver/summary" and summary["schema_version"] == 3
    speed = summary["metrics"]["speed"]
    assert speed["values"] == [100.0, 110.0, 120.0, 130.0, 1000.0]
    assert speed["mean"] == 292.0 and speed["min"] == 100.0 and speed["max"] == 1000.0
    assert speed["outliers"] == [4]
    assert [(r["kind"], r["index"], r["seed"]) for r in summary["runs"]] == [
        ("warmup", 0, 0), *[("repetition", i, i) for i in range(5)]]
    assert all(Path(tmp_path, r["record"]).is_file() for r in summary["runs"])
    assert runs_log(tmp_path)[:2] == ["x 0 start", "x 0 end"]  # the warmup ran, and first
    assert "outliers: 4" in run.stderr


def test_statistic_mean_and_seed_offset(toy, cli):
    toy()
    run = cli("--task-name", "toy", "--repetitions", "2", "--seed", "1", "--statistic", "mean")
    assert run.returncode == 0, run.stderr
    assert run.result["toy.speed"] == 115.0  # seeds 1 and 2: 110 and 120


def test_experiment_runs_every_variant_into_its_directory(toy, cli, tmp_path):
    toy("""
        [experiments.grid]
        task = "toy"
        repetitions = 2
        warmup = 1
        [experiments.grid.matrix]
        tag = ["a", "b"]
        mult = [1, 2]
    """)
    run = cli("experiment", "grid", "--junit", "junit.xml")
    assert run.returncode == 0, run.stderr
    exp = tmp_path / "bench-runs" / "grid"
    for variant in ("tag=a,mult=1", "tag=a,mult=2", "tag=b,mult=1", "tag=b,mult=2"):
        for rep in ("warmup-0", "0", "1"):
            assert (exp / variant / rep / "record.json").is_file()
    flat = json.loads((exp / "tag=b,mult=2" / "result.json").read_text())
    assert flat["toy.speed"] == 210.0  # median of 200 and 220
    index = json.loads((exp / "experiment.json").read_text())
    assert [v["name"] for v in index["variants"]] == ["tag=a,mult=1", "tag=a,mult=2",
                                                      "tag=b,mult=1", "tag=b,mult=2"]
    assert "| grid/tag=b,mult=2 | speed | 2 | 210 |" in (exp / "summary.md").read_text()
    assert (exp / "summary.csv").read_text().count("\n") == 1 + 4 * 4  # 4 metrics per variant
    pivot = run.stderr.splitlines()  # one row per variant, a column per metric (median)
    assert pivot[pivot.index("grid: median per variant (± std/mean over the repetitions)") + 1
                 ].split()[:3] == ["tag", "mult", "speed"]
    assert any(line.split()[:3] == ["b", "2", "210"] for line in pivot)


def test_experiment_is_validated_before_anything_runs(toy, cli, tmp_path):
    toy('[experiments.grid]\ntask = "toy"\nmatrix = { tag = ["a"], mlt = [1] }')
    run = cli("--experiment", "grid")
    assert run.returncode == 3
    assert "[experiments.grid] matrix.mlt: task 'toy' has no parameter 'mlt' (did you mean " \
           "'mult'?)" in run.stderr
    assert not (tmp_path / "bench-runs").exists() and not (tmp_path / "runs.log").exists()


def test_failed_repetition_sets_exit_code_and_is_not_measured(toy, cli, tmp_path):
    toy()
    run = cli("--task-name", "toy", "--repetitions", "3", "--set", "fail_at=1",
              "--junit", "junit.xml")
    assert run.returncode == 4, run.stderr
    summary = json.loads(next(tmp_path.glob("bench-runs/toy/*/summary.json")).read_text())
    assert summary["metrics"]["speed"]["values"] == [100.0, 120.0]
    assert run.result["toy.speed"] == 110.0
    assert "toy repetition 1: failed" in run.stderr


KILL_TABLE = """
    [experiments.grid]
    task = "toy"
    repetitions = 2
    params = { block_at = 0, block_tag = "b" }
    [experiments.grid.matrix]
    tag = ["a", "b"]
"""


def start_driver(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "driver", *args], cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO)})


def wait_for_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until the driver echoes the task's line: no sleeping
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the driver ended before printing {prefix!r}")


def test_resume_after_sigkill_does_not_rerun_finished_repetitions(toy, cli, tmp_path):
    toy(KILL_TABLE)
    first = start_driver(tmp_path, "experiment", "grid", "--verbose")
    line = wait_for_line(first, "started b 0")  # b's repetition 0 hangs (once)
    first.kill()  # SIGKILL: no handler, no cleanup
    first.wait()
    with contextlib.suppress(ProcessLookupError):  # the watchdog may have reaped it already
        os.kill(int(line.split("pid=")[1]), signal.SIGKILL)  # the task, if still there
    assert json.loads((tmp_path / "bench-runs/grid/tag=b/0/record.json").read_text())[
        "status"] == "running"
    second = cli("experiment", "grid")
    assert second.returncode == 0, second.stderr
    log = runs_log(tmp_path)
    assert [log.count(f"a {r} start") for r in (0, 1)] == [1, 1]  # not rerun
    assert log.count("b 0 start") == 2 and log.count("b 0 end") == 1 and \
        log.count("b 1 start") == 1
    assert "kept 2 finished run(s)" in second.stderr
    summary = json.loads((tmp_path / "bench-runs/grid/tag=a/summary.json").read_text())
    assert [r["resumed"] for r in summary["runs"]] == [True, True]
    b = json.loads((tmp_path / "bench-runs/grid/tag=b/summary.json").read_text())
    assert b["complete"] and b["metrics"]["speed"]["values"] == [100.0, 110.0]


def test_second_invocation_is_refused_while_the_first_runs(toy, cli, tmp_path):
    toy('[experiments.grid]\ntask = "toy"\nparams = { wait_at = 0 }\nmatrix = { tag = ["a"] }')
    first = start_driver(tmp_path, "experiment", "grid", "--verbose")
    wait_for_line(first, "started a 0")
    second = cli("experiment", "grid")
    (tmp_path / "release").touch()
    assert first.wait(timeout=60) == 0
    assert second.returncode == 3
    assert f"being run by process {first.pid}" in second.stderr
    assert runs_log(tmp_path).count("a 0 start") == 1


def test_changed_configuration_is_refused_until_restart(toy, cli, tmp_path):
    toy('[experiments.grid]\ntask = "toy"\nmatrix = { tag = ["a"] }')
    assert cli("experiment", "grid").returncode == 0
    changed = cli("experiment", "grid", "--seed", "5")
    assert changed.returncode == 3 and "pass --restart" in changed.stderr
    assert runs_log(tmp_path).count("a 0 start") == 1
    restarted = cli("experiment", "grid", "--seed", "5", "--restart")
    assert restarted.returncode == 0, restarted.stderr
    flat = json.loads((tmp_path / "bench-runs/grid/tag=a/result.json").read_text())
    assert flat["toy.speed"] == 150.0


def test_sigterm_stops_the_experiment_and_resume_reruns_the_interrupted_run(toy, cli, tmp_path):
    toy('[experiments.grid]\ntask = "toy"\nrepetitions = 2\nparams = { wait_at = 1 }\n'
        'matrix = { tag = ["a", "b"] }')
    first = start_driver(tmp_path, "experiment", "grid", "--verbose")
    wait_for_line(first, "started a 1")
    first.send_signal(signal.SIGTERM)  # forwarded to the task; the set and experiment stop
    assert first.wait(timeout=60) == 143
    summary = json.loads((tmp_path / "bench-runs/grid/tag=a/summary.json").read_text())
    assert not summary["complete"] and [r["status"] for r in summary["runs"]] == [
        "ok", "interrupted"]
    assert not (tmp_path / "bench-runs/grid/tag=b").exists()
    (tmp_path / "release").touch()
    second = cli("experiment", "grid")
    assert second.returncode == 0, second.stderr
    log = runs_log(tmp_path)
    assert log.count("a 0 start") == 1 and log.count("a 1 start") == 2
    assert log.count("b 0 start") == 1 and log.count("b 1 end") == 1
