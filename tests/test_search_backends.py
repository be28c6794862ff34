"""Live searches on the execution backends (driver.search_backend, tasks/_backend.py): every trial
a driver run of a task, N in flight, results told as they finish; failures told by the policy;
a stop signal cancels the trials in flight. Toy sizes, real subprocesses, the real CLI."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from driver.backends import Backend, Finished, Placement, RunJob
from driver.config import load_config
from driver.plugins import PluginSet
from driver.search import Trial
from driver.search_backend import BackendExecutor, TrialRuns

CONFIG = str(REPO / "task_config.toml")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # see tests/test_nas201_training.py
TOY_LIVE = ("dataset=ImageNet16-120", "time_budget=0")  # the cheapest network; no time budget


def live_search(cli, tmp_path: Path, name: str, *sets: str,  # type: ignore[no-untyped-def]
                seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """nas201_live_search through the CLI: its flat result and its trials.jsonl rows."""
    settings = [item for s in (*TOY_LIVE, *sets) for item in ("--set", s)]
    done = cli("run", "--config", CONFIG, "--quiet", "--task-name", "nas201_live_search",
               "--seed", str(seed), *settings, "--output", str(tmp_path / f"{name}.json"),
               "--runs-dir", str(tmp_path / name), timeout=900, env=ONE_THREAD)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / f"{name}.json").read_text())
    run_dir = next((tmp_path / name / "nas201_live_search").glob("*/trials.jsonl")).parent
    trials = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    return {k.removeprefix("nas201_live_search."): v for k, v in result.items()}, trials


def run_record(trial: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(Path(trial["info"]["run_dir"], "record.json").read_text())
    return record


def test_two_live_trials_at_once_on_the_local_backend_overlap_in_time(cli, tmp_path) -> None:
    values, trials = live_search(cli, tmp_path, "local", "backend=local", "concurrency=2",
                                 "max_evaluations=4", seed=3)
    assert values["evaluations"] == values["progress_lines"] == len(trials) == 4
    records = [run_record(t) for t in trials]
    assert {r["task"] for r in records} == {"nas201_live_trial"}
    assert all(r["status"] == "ok" and str(r["params"]["stop_epoch"]) == "2" for r in records)
    for trial, record in zip(trials, records):
        assert trial["config"] == record["params"]["arch"]
        metric = {name: m["value"] for name, m in record["metrics"].items()}
        assert trial["value"] == metric["valid_accuracy"] and "failed" not in trial["info"]
        assert record["memory"]  # each trial is a full run: its memory was sampled
    spans = sorted((r["started_at"], r["ended_at"]) for r in records)  # ISO 8601, UTC
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))
    times = [t["time_s"] for t in trials]
    assert times == sorted(times)  # told in completion order, on the search's wall clock


def test_one_at_a_time_on_a_backend_gives_the_in_process_trajectory(cli, tmp_path) -> None:
    """Training a toy cell on a CPU is deterministic for a seed, in this process or a run."""
    sets = ("max_evaluations=3", "searcher=rea")
    _, here = live_search(cli, tmp_path, "here", *sets, seed=5)
    _, there = live_search(cli, tmp_path, "there", *sets, "backend=local", seed=5)
    assert [(t["config"], t["value"]) for t in there] == [(t["config"], t["value"]) for t in here]
    assert "run_dir" in there[0]["info"] and "run_dir" not in here[0]["info"]


# A search over the toy space whose trials are runs of `trial` (toy_trial.py): trial N fails
# when N is in the fail list, waits for the file "release" when N is in the hold list.
TRIAL = """
import argparse, ast, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--arch"); p.add_argument("--run-dir"); p.add_argument("--fail", default="")
p.add_argument("--hold", default="")
a = p.parse_args()
number = int(os.path.basename(a.run_dir))
print("started", flush=True)
while str(number) in a.hold.split(",") and not os.path.exists("release"):
    time.sleep(0.05)
if str(number) in a.fail.split(","):
    sys.exit(1)
print(f"value: {-sum((x - t) ** 2 for x, t in zip(ast.literal_eval(a.arch), (3, 1, 4)))}")
"""

SEARCH_CONFIG = """
[tasks.search]
command_to_execute = "{{python}} {repo}/tasks/nas_search.py --searcher random --space toy --seed 1 --max-evaluations {{n}} --concurrency 2 --backend {{backend}} --backend-args {{backend_args}} --trial-config {config} --trial-task trial --trials-dir {{run_dir}}/trials --trials-file {{run_dir}}/trials.jsonl --on-failure {{on_failure}} --failed-value {{failed_value}}"
patterns = ['^final: evaluations=(\\d+)']
metrics = ['evaluations']
compute_method = ['last']
[tasks.search.params]
n = 4
backend = "local"
backend_args = ""
on_failure = "tell"
failed_value = -1000  # below every toy value (0 at best)
fail = ""
hold = ""
[tasks.trial]
command_to_execute = "{{python}} toy_trial.py --arch {{arch}} --run-dir {{run_dir}} --fail {{fail}} --hold {{hold}}"
patterns = ['^value: (\\S+)']
metrics = ['valid_accuracy']
compute_method = ['last']
[tasks.trial.params]
arch = ""
fail = "{fail}"
hold = "{hold}"
epochs = 1
stop_epoch = 1
"""


def toy_search(write_config, tmp_path: Path,  # type: ignore[no-untyped-def]
               fail: str = "", hold: str = "") -> Path:
    (tmp_path / "toy_trial.py").write_text(TRIAL)
    path = tmp_path / "task_config.toml"
    return write_config(SEARCH_CONFIG.format(repo=REPO, config=path, fail=fail, hold=hold))


def trials_of(tmp_path: Path) -> list[dict[str, Any]]:
    found = next((tmp_path / "bench-runs" / "search").glob("*/trials.jsonl"))
    return [json.loads(line) for line in found.read_text().splitlines()]


def test_a_failed_trial_is_told_as_the_failed_value(cli, write_config, tmp_path) -> None:
    toy_search(write_config, tmp_path, fail="1,2")
    done = cli("run", "--task-name", "search", "--quiet", "--output", "out.json")
    assert done.returncode == 0, done.stderr
    trials = {t["number"]: t for t in trials_of(tmp_path)}
    assert sorted(trials) == [0, 1, 2, 3]
    for number in (1, 2):
        assert trials[number]["value"] == -1000
        assert "the run ended 'failed' (exit code 1)" in trials[number]["info"]["failed"]
    for number in (0, 3):
        config = trials[number]["config"]
        assert trials[number]["value"] == -sum((x - t) ** 2 for x, t in zip(config, (3, 1, 4)))
    assert json.loads((tmp_path / "out.json").read_text())["search.evaluations"] == 4


def test_the_stop_policy_ends_the_search_at_the_first_failure(cli, write_config, tmp_path) -> None:
    toy_search(write_config, tmp_path, fail="0")
    done = cli("run", "--task-name", "search", "--set", "on_failure=stop", "--set", "n=8")
    assert done.returncode == 4, done.stderr  # the search task's exit code: command failed
    log = next((tmp_path / "bench-runs" / "search").glob("*/output.log")).read_text()
    assert "trial 0 ((" in log and "failed: the run ended 'failed' (exit code 1)" in log
    assert "Traceback" not in log
    assert len(list((tmp_path / "bench-runs" / "search").glob("*/trials/*"))) < 8


def test_sigterm_on_the_search_cancels_the_trials_in_flight(write_config, tmp_path) -> None:
    toy_search(write_config, tmp_path, hold="0,1")
    driver = subprocess.Popen([sys.executable, "-m", "driver", "run", "--task-name", "search",
                               "--quiet"], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    logs = tmp_path / "bench-runs" / "search"
    deadline = time.monotonic() + 120
    while len(list(logs.glob("*/trials/*/output.log"))) < 2 or not all(
            "started" in p.read_text() for p in logs.glob("*/trials/*/output.log")):
        assert time.monotonic() < deadline and driver.poll() is None, driver.communicate()
        time.sleep(0.1)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)
    assert driver.returncode == 128 + signal.SIGTERM, stderr
    records = [json.loads(p.read_text()) for p in logs.glob("*/trials/*/record.json")]
    assert len(records) == 2 and {r["status"] for r in records} == {"interrupted"}, records
    assert not (tmp_path / "release").exists()


def test_a_bad_backend_option_is_refused_before_any_trial(cli, write_config, tmp_path) -> None:
    toy_search(write_config, tmp_path)
    done = cli("run", "--task-name", "search", "--set", "backend_args=--ray-retries x")
    log = next((tmp_path / "bench-runs" / "search").glob("*/output.log")).read_text()
    assert done.returncode == 4 and "--backend-args '--ray-retries x'" in log, log
    assert "invalid int value: 'x'" in log
    assert not list((tmp_path / "bench-runs" / "search").glob("*/trials/*"))


def test_toy_trials_through_a_real_ray_cluster(cli, write_config, tmp_path, ray_address) -> None:
    toy_search(write_config, tmp_path)
    done = cli("run", "--task-name", "search", "--set", "backend=ray", "--set",
               f"backend_args=--address {ray_address}", "--output", "out.json",
               env={"RAY_AUTH_MODE": "disabled"}, timeout=300)
    assert done.returncode == 0, done.stderr
    check_toy_trials(tmp_path)


def test_toy_trials_through_submitit_local_executor(cli, write_config, tmp_path) -> None:
    toy_search(write_config, tmp_path)
    done = cli("run", "--task-name", "search", "--set", "backend=slurm", "--set",
               "backend_args=--slurm-executor local", "--output", "out.json", timeout=300)
    assert done.returncode == 0, done.stderr
    check_toy_trials(tmp_path)
    assert list((tmp_path / "bench-runs" / "search").glob("*/trials/.slurm/*"))  # submitit's


def check_toy_trials(tmp_path: Path) -> None:
    """Four toy trials, each an ok run of `trial` whose value the search was told."""
    trials = trials_of(tmp_path)
    assert sorted(t["number"] for t in trials) == [0, 1, 2, 3]
    for trial in trials:
        assert trial["value"] == -sum((x - t) ** 2 for x, t in zip(trial["config"], (3, 1, 4)))
        assert run_record(trial)["status"] == "ok" and run_record(trial)["task"] == "trial"
    assert json.loads((tmp_path / "out.json").read_text())["search.evaluations"] == 4


@pytest.mark.parametrize(("backend", "backend_args", "message"), [
    ("local", "--slurm-partitions gpu", "unknown option(s) --slurm-partitions gpu"),
    ("lcoal", "", "--backend 'lcoal': no such backend (did you mean 'local'?)"),
    ("slurm", "--slurm-time-min 0", "--slurm-time-min 0,"),
])
def test_a_bad_backend_is_refused_before_any_trial(backend: str, backend_args: str, message: str,
                                                   tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "tasks/nas_search.py", "--searcher", "random", "--space", "toy",
         "--max-evaluations", "1", "--backend", backend, "--backend-args", backend_args,
         "--trials-dir", str(tmp_path), "--trial-task", "nas201_live_trial"], cwd=REPO,
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert done.returncode == 3, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not list(tmp_path.iterdir())


class ScriptedBackend(Backend):
    """Ends the jobs in the reverse order of submission; every worker "dies"."""

    def __init__(self) -> None:
        self.live: list[RunJob] = []
        self.cancelled: list[str] = []
        self.closed = False

    def submit(self, job: RunJob, placement: Placement) -> None:
        self.live.append(job)

    def next_finished(self, timeout_s: float) -> Finished | None:
        if not self.live:
            return None
        return Finished(self.live.pop(), None, "the worker was killed by SIGKILL")

    def cancel(self, signal_name: str) -> None:
        self.cancelled.append(signal_name)

    def close(self) -> None:
        self.closed = True


def test_the_executor_tells_dead_workers_as_failures_and_cancels_what_is_left(
        write_config, tmp_path: Path) -> None:
    toy_search(write_config, tmp_path)
    config = load_config(tmp_path / "task_config.toml")
    runs = TrialRuns(config, "trial", ["last"], tmp_path / "trials", PluginSet(),
                     argparse.Namespace(), fixed={"epochs": "1", "stop_epoch": "1"})
    backend = ScriptedBackend()
    with BackendExecutor(backend, runs, failed_value=-5.0) as executor:
        for number in range(3):
            executor.submit(Trial(number, (number, 0, 0)))
        finish_s, result = executor.next_result()
        assert result.trial.number == 2 and result.value == -5.0 and executor.in_flight == 2
        assert result.info["failed"] == "the worker was killed by SIGKILL" and finish_s >= 0
        assert backend.live[0].task.params["arch"] == "(0, 0, 0)"
        assert backend.live[0].options.run_dir == (tmp_path / "trials" / "0000").absolute()
    assert backend.cancelled == ["SIGTERM"] and backend.closed and executor.in_flight == 0


def test_failed_trials_stay_off_the_pareto_fronts(tmp_path: Path) -> None:
    from plugins.nas201.pareto import search_points
    from plugins.nas201.space import index_to_arch

    rows = [{"config": index_to_arch(0), "value": 0.0, "info": {"failed": "exit code 1"}},
            {"config": index_to_arch(1), "value": 42.5, "info": {"latency_s": 0.01}}]
    path = tmp_path / "trials.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    points = search_points(path, "cifar10-valid")
    assert [(p.arch, p.accuracy) for p in points] == [(index_to_arch(1), 42.5)]
