"""Statistics over repetitions against hand-computed values, the tests against scipy, and the
summary document."""

from __future__ import annotations

import json
import math
import random

import pytest

from driver.errors import ConfigError
from driver.experiments.stats import (describe, mann_whitney_u, outlier_flags, regularized_beta,
                                      significance, t_two_sided_p, welch_t_test)
from driver.experiments.summary import (SUMMARY_SCHEMA, MetricSummary, SetRun, SetSummary,
                                        record_metas, summarise_metrics)
from driver.reduce import MetricResult, quantile
from driver.results import RunRecord


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
    from scipy import stats
    rng = random.Random(7)
    for _ in range(200):
        a = [rng.gauss(0, 1) for _ in range(rng.randint(2, 10))]
        b = [rng.gauss(rng.random(), rng.random() * 3 + 0.1) for _ in range(rng.randint(2, 10))]
        ours, theirs = welch_t_test(a, b), stats.ttest_ind(b, a, equal_var=False)
        assert ours.p_value == pytest.approx(theirs.pvalue, abs=1e-9)
        assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9)


def test_welch_with_tiny_variances_does_not_divide_by_zero():
    # variances of ~1e-320: their squares underflow to 0 in the Welch-Satterthwaite formula
    r = welch_t_test([1e-160, 2e-160], [1e-160, 3e-160])
    assert 0.0 < r.p_value <= 1.0 and math.isfinite(r.statistic)
    # scale-free, but for the few bits a subnormal variance keeps
    assert r.p_value == pytest.approx(welch_t_test([1, 2], [1, 3]).p_value, rel=1e-4)


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
    return [SetRun("repetition", i, i, "ok", 0, None, 0.1, f"runs/{i}", f"runs/{i}/record.json",
                   False, v) for i, v in enumerate(values)]


def test_summarise_metrics_counts_missing_and_maps_outliers_to_repetitions():
    runs = runs_with([{"speed": 10.0}, {}, {"speed": 11.0}, {"speed": 12.0}, {"speed": 13.0},
                      {"speed": 90.0}])
    summary = summarise_metrics(runs, {"speed": {"direction": "higher"}, "loss": {}})
    speed = summary["speed"]
    assert speed.n == 5 and speed.missing == 1 and speed.median == 12.0
    assert speed.repetitions == (0, 2, 3, 4, 5)
    assert speed.outliers == (5,)  # position 4 of the values is repetition 5
    assert speed.direction == "higher"
    assert summary["loss"] == MetricSummary(n=0, repetitions=(), missing=6)


def record(status="ok", speed=1.0, index=0):
    return RunRecord(task="t", command="", status=status, exit_code=0, started_at="",
                     ended_at="", duration_s=0.1, run_dir=f"runs/{index}",
                     metrics=(MetricResult("speed", speed, "last", 1, 1, direction="higher"),
                              MetricResult("loss", None, "last", 0, 0, optional=True)),
                     resource_metrics={"cpu_memory_usage": 12.0})


def summary_of(runs, repetitions, warmup, statistic, metas):
    header = SetSummary("t", repetitions, warmup, 0, statistic, (), {})
    return SetSummary.build(header, runs, metas)


def test_set_summary_uses_measured_repetitions_only(tmp_path):
    runs = [SetRun.of("warmup", 0, 0, record(speed=999.0), False),
            SetRun.of("repetition", 0, 0, record(speed=1.0), False),
            SetRun.of("repetition", 1, 1, record("failed", speed=500.0), False),
            SetRun.of("repetition", 2, 2, record(speed=3.0), True)]
    summary = summary_of(runs, 3, 1, "mean", {"speed": {"direction": "higher"}})
    assert summary.complete
    assert summary.metrics["speed"].values == (1.0, 3.0)
    assert summary.metrics["cpu_memory_usage"].n == 2
    assert runs[1].missing_required == () and runs[1].record == "runs/0/record.json"
    assert summary.flat("torch", "daily") == {
        "torch.t.speed.daily": 2.0, "torch.t.cpu_memory_usage.daily": 12.0}
    assert summary.flat()["t.speed"] == 2.0
    summary.save(tmp_path / "summary.json")
    document = json.loads((tmp_path / "summary.json").read_text())
    assert document["schema"] == SUMMARY_SCHEMA and document["complete"]
    assert SetSummary.load(tmp_path / "summary.json") == summary


def test_incomplete_set_is_marked():
    runs = [SetRun.of("repetition", 0, 0, record("interrupted"), False)]
    summary = summary_of(runs, 2, 0, "median", record_metas(record()))
    assert not summary.complete and summary.metrics["speed"].n == 0


def test_statistics_that_overflow_are_left_out_with_the_reason():
    s = describe([1.7e308, -1.7e308, 1.7e308])
    assert s.median == 1.7e308 and s.mean == pytest.approx(1.7e308 / 3) and s.std is None
    assert s.overflow == ("std",)
    runs = runs_with([{"big": 1.7e308}, {"big": 1.7e308}])
    big = summarise_metrics(runs, {"big": {"optional": False}})["big"]
    assert big.mean == 1.7e308 and big.median == 1.7e308 and big.error is None  # no overflow
    summary = summary_of(runs_with([{"x": 1.7e308}, {"x": -1.7e308}]), 2, 0, "mean",
                         {"x": {"optional": False}})
    assert summary.metrics["x"].mean == 0.0 and summary.metrics["x"].error == "overflow: std"


def test_load_document_refuses_other_schemas_and_versions(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"schema": SUMMARY_SCHEMA, "schema_version": 99}))
    with pytest.raises(ConfigError, match="schema_version 99 is not supported"):
        SetSummary.load(path)
    path.write_text(json.dumps({"a": 1}))
    with pytest.raises(ConfigError, match="not a 'bench-driver/summary' document"):
        SetSummary.load(path)
