"""Statistics over repetitions against hand-computed values, the tests against scipy, and the
summary document."""

from __future__ import annotations

import json
import math
import random

import pytest

from driver.errors import ConfigError
from driver.results import load_document
from driver.experiments.stats import (SUMMARY_SCHEMA, describe, flat_from_summary,
                          mann_whitney_u, outlier_flags, quantile, record_metas, regularized_beta,
                          run_entry, set_summary, significance, summarise_metrics, t_two_sided_p,
                          welch_t_test)


def test_describe_known_values():
    s = describe([2, 4, 4, 4, 5, 5, 7, 9])
    assert (s.n, s.median, s.mean, s.min, s.max) == (8, 4.5, 5.0, 2.0, 9.0)
    assert s.std == pytest.approx(math.sqrt(32 / 7))  # sample std: sum of squares 32, n - 1 = 7
    # Q1 = 4 (rank 1.75), Q3 = 5.5 (rank 5.25), IQR 1.5, fences [1.75, 7.75]: 9 is out
    assert s.outliers == (7,)
    assert s.statistic("median") == 4.5 and s.statistic("max") == 9.0


def test_describe_one_value_has_no_std_and_no_outlier():
    s = describe([3.5])
    assert (s.n, s.median, s.mean, s.std, s.min, s.max, s.outliers) == (1, 3.5, 3.5, None, 3.5,
                                                                        3.5, ())


def test_outliers_follow_tukey_fences():
    assert outlier_flags([1, 2, 3, 4, 100]) == [False, False, False, False, True]
    assert outlier_flags([-50, 10, 11, 12, 13]) == [True, False, False, False, False]
    assert outlier_flags([1, 1, 1000]) == [False, False, False]  # three values: never flagged
    assert outlier_flags([5, 5, 5, 5]) == [False] * 4


def test_quantile_interpolates_linearly():
    assert quantile([1, 2, 3, 4], 0.25) == 1.75
    assert quantile([10], 0.75) == 10
    assert quantile([4, 1, 3, 2], 0.5) == 2.5


def test_unknown_statistic_is_a_config_error():
    with pytest.raises(ConfigError, match="expected one of median, mean, min, max"):
        describe([1, 2]).statistic("mode")


def test_welch_hand_computed():
    r = welch_t_test([1, 2, 3, 4], [2, 4, 6, 8])
    # means 2.5 and 5, variances 5/3 and 20/3: se^2 = 5/12 + 5/3 = 25/12, t = 2.5 / sqrt(25/12)
    assert r.statistic == pytest.approx(math.sqrt(3))
    # df = (25/12)^2 / ((5/12)^2/3 + (5/3)^2/3) = 75/17; P(|T| > sqrt(3)) with 75/17 df
    assert r.p_value == pytest.approx(0.15158, abs=1e-5)


def test_t_distribution_known_points():
    assert t_two_sided_p(0.0, 7) == 1.0
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5)  # Cauchy: 1 - 2/pi * atan(1)
    assert t_two_sided_p(2.0, 2) == pytest.approx(1 - 2 / math.sqrt(6))  # closed form, df = 2
    assert regularized_beta(1, 1, 0.3) == pytest.approx(0.3)
    assert regularized_beta(2.5, 2.5, 0.5) == pytest.approx(0.5)


def test_welch_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    for _ in range(200):
        a = [rng.gauss(0, 1) for _ in range(rng.randint(2, 10))]
        b = [rng.gauss(rng.random(), rng.random() * 3 + 0.1) for _ in range(rng.randint(2, 10))]
        ours, theirs = welch_t_test(a, b), stats.ttest_ind(b, a, equal_var=False)
        assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)
        assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9)


def test_welch_without_variance():
    assert welch_t_test([1, 1], [1, 1]).p_value == 1.0
    assert welch_t_test([1, 1], [2, 2]).p_value == 0.0
    assert welch_t_test([1, 1, 1], [2, 3, 4]).p_value < 0.1  # one side constant: df = n - 1


def test_tests_need_two_values_per_side():
    with pytest.raises(ValueError):
        welch_t_test([1], [1, 2])


def test_mann_whitney_exact_small_samples():
    pytest.importorskip("scipy")
    r = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert r.statistic == 9 and r.p_value == pytest.approx(0.1)  # 2 of 20 orderings
    assert significance([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], "mannwhitney").p_value == \
        pytest.approx(2 / 252)
    with pytest.raises(ConfigError, match="--test 'ttest'"):
        significance([1, 2], [3, 4], "ttest")


def runs_with(values):
    return [{"index": i, "values": v} for i, v in enumerate(values)]


def test_summarise_metrics_counts_missing_and_maps_outliers_to_repetitions():
    runs = runs_with([{"speed": 10.0}, {}, {"speed": 11.0}, {"speed": 12.0}, {"speed": 13.0},
                      {"speed": 90.0}])
    summary = summarise_metrics(runs, {"speed": {"direction": "higher"}, "loss": {}})
    speed = summary["speed"]
    assert speed["n"] == 5 and speed["missing"] == 1 and speed["median"] == 12.0
    assert speed["repetitions"] == [0, 2, 3, 4, 5]
    assert speed["outliers"] == [5]  # position 4 of the values is repetition 5
    assert speed["direction"] == "higher"
    assert summary["loss"] == {"n": 0, "repetitions": [], "missing": 6}


def record(status="ok", speed=1.0, index=0):
    return {"status": status, "exit_code": 0, "run_dir": f"runs/{index}", "duration_s": 0.1,
            "metrics": {"speed": {"value": speed, "optional": False, "direction": "higher"},
                        "loss": {"value": None, "optional": True}},
            "resource_metrics": {"cpu_memory_usage": 12.0}}


def test_set_summary_uses_measured_repetitions_only():
    runs = [run_entry("warmup", 0, 0, record(speed=999.0), False),
            run_entry("repetition", 0, 0, record(speed=1.0), False),
            run_entry("repetition", 1, 1, record("failed", speed=500.0), False),
            run_entry("repetition", 2, 2, record(speed=3.0), True)]
    header = {"task": "t", "repetitions": 3, "warmup": 1, "statistic": "mean"}
    summary = set_summary(header, runs, {"speed": {"direction": "higher"}})
    assert summary["schema"] == SUMMARY_SCHEMA and summary["complete"]
    assert summary["metrics"]["speed"]["values"] == [1.0, 3.0]
    assert summary["metrics"]["cpu_memory_usage"]["n"] == 2
    assert runs[1]["missing_required"] == [] and runs[1]["record"] == "runs/0/record.json"
    assert flat_from_summary(summary, "torch", "daily") == {
        "torch.t.speed.daily": 2.0, "torch.t.cpu_memory_usage.daily": 12.0}
    assert flat_from_summary(summary, None, None)["t.speed"] == 2.0


def test_incomplete_set_is_marked():
    runs = [run_entry("repetition", 0, 0, record("interrupted"), False)]
    summary = set_summary({"task": "t", "repetitions": 2, "warmup": 0, "statistic": "median"},
                          runs, record_metas(record()))
    assert not summary["complete"] and summary["metrics"]["speed"]["n"] == 0


def test_load_document_refuses_other_schemas_and_versions(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"schema": SUMMARY_SCHEMA, "schema_version": 99}))
    with pytest.raises(ConfigError, match="schema_version 99 is not supported"):
        load_document(path, SUMMARY_SCHEMA)
    path.write_text(json.dumps({"a": 1}))
    with pytest.raises(ConfigError, match="not a 'bench-driver/summary' document"):
        load_document(path, SUMMARY_SCHEMA)
