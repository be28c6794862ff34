"""Regression detection over history, on synthetic histories: known steps are found, pure noise
raises no alarm; ``bench-driver history check`` exits 8 with compare's CI outputs."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from driver.errors import ConfigError
from driver.experiments.compare import IMPROVEMENT, NEW, REGRESSION, WITHIN
from plugins.history.check import CheckOptions, check_latest, judge, step_starts
from plugins.history.rows import Point
from test_history_store import write_series

OPTIONS = CheckOptions()


def series(values: list[float], metric: str = "speed") -> list[Point]:
    return [Point("toy", "toy", metric, f"2026-01-01T{i:05d}", v, v, v, 1, (v,), None, None,
                  None, None, "run", f"/r{i}") for i, v in enumerate(values)]


def noisy(rng: random.Random, n: int, level: float = 100.0, noise: float = 0.03) -> list[float]:
    return [rng.gauss(level, level * noise) for _ in range(n)]


def test_a_known_step_is_a_regression_in_either_direction() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        history = noisy(rng, 25)
        slower = series(history + [rng.gauss(80, 2)], "speed")  # higher is better
        longer = series(history + [rng.gauss(120, 2)], "epoch_time")  # lower is better
        assert judge("toy.speed", slower[:-1], slower[-1], OPTIONS).verdict == REGRESSION
        assert judge("toy.time", longer[:-1], longer[-1], OPTIONS).verdict == REGRESSION


def test_the_step_is_marked_where_it_starts_and_only_there() -> None:
    for seed in range(20):
        rng = random.Random(seed)
        values = series(noisy(rng, 30) + noisy(rng, 10, level=75.0))
        assert step_starts(values, OPTIONS) == [30], seed


def test_pure_noise_raises_no_alarm() -> None:
    rng = random.Random(2026)
    alarms = 0
    for _ in range(500):
        values = series(noisy(rng, 26))
        alarms += judge("toy.speed", values[:-1], values[-1], OPTIONS).verdict == REGRESSION
    assert alarms == 0


def test_heavy_tailed_noise_with_outliers_in_the_history_raises_no_alarm() -> None:
    rng = random.Random(7)
    for _ in range(200):
        values = noisy(rng, 26)
        values[rng.randrange(25)] = 60.0  # one bad run in the lookback window
        points = series(values)
        assert judge("toy.speed", points[:-1], points[-1], OPTIONS).verdict != REGRESSION


def test_a_better_value_is_an_improvement_not_a_failure() -> None:
    values = series(noisy(random.Random(3), 25) + [130.0])
    verdict = judge("toy.speed", values[:-1], values[-1], OPTIONS)
    assert verdict.verdict == IMPROVEMENT and not verdict.failed


def test_a_small_steady_shift_of_a_quiet_metric_stays_within_the_threshold() -> None:
    values = series([100.0 + 0.01 * (i % 2) for i in range(25)] + [97.0])  # 3% < 5%
    assert judge("toy.speed", values[:-1], values[-1], OPTIONS).verdict == WITHIN


def test_too_short_a_history_gives_no_verdict() -> None:
    values = series([100.0, 100.0, 100.0, 50.0])
    assert judge("toy.speed", values[:-1], values[-1], OPTIONS).verdict == NEW


def test_only_the_lookback_window_counts() -> None:
    old = [50.0] * 40  # a level long gone
    values = series(old + noisy(random.Random(5), 20) + [99.0])
    assert judge("toy.speed", values[:-1], values[-1], OPTIONS).verdict == WITHIN
    long_view = replace(OPTIONS, lookback=60)
    assert judge("toy.speed", values[:-1], values[-1], long_view).verdict != REGRESSION


def test_every_series_is_judged_on_its_latest_point() -> None:
    rng = random.Random(11)
    points = series(noisy(rng, 20) + [70.0], "speed") + series(noisy(rng, 20), "loss")
    verdicts = {v.key: v.verdict for v in check_latest(points, OPTIONS)}
    assert verdicts["toy.speed"] == REGRESSION and verdicts["toy.loss"] != REGRESSION


def test_history_check_exits_8_with_junit_and_markdown(tmp_path: Path, cli) -> None:
    db = tmp_path / "bench-runs" / "history.sqlite"
    rng = random.Random(1)
    write_series(db, "speed", noisy(rng, 20) + [70.0])
    write_series(db, "loss", noisy(rng, 21, level=1.0))
    done = cli("history", "check", "--junit", "j.xml", "--markdown", "m.md")
    assert done.returncode == 8, done.stderr
    assert "toy.speed" in done.stdout and "REGRESSION" in done.stdout
    junit = (tmp_path / "j.xml").read_text()
    assert 'name="toy.speed"' in junit and "<failure" in junit
    markdown = (tmp_path / "m.md").read_text()
    assert "history check" in markdown and "**1 failure(s)**" in markdown


def test_history_check_passes_on_noise(tmp_path: Path, cli) -> None:
    db = tmp_path / "h.sqlite"
    write_series(db, "speed", noisy(random.Random(4), 21))
    done = cli("history", "check", "toy", "--db", str(db), "--metric", "speed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "toy.speed" in done.stdout and "REGRESSION" not in done.stdout


def test_history_check_refuses_a_bad_lookback(tmp_path: Path, cli) -> None:
    write_series(tmp_path / "h.sqlite", "speed", [1.0] * 6)
    done = cli("history", "check", "--db", "h.sqlite", "--lookback", "1")
    assert done.returncode == 3 and "--lookback 1 must be >= 2" in done.stderr


@pytest.mark.parametrize("command", [["history", "check"], ["report"]])
def test_a_per_metric_threshold_is_refused_not_ignored(cli, command) -> None:
    done = cli(*command, "--threshold", "speed=0.01")
    assert done.returncode == 3, done.stderr
    assert "--threshold 'speed=0.01': one limit for every metric here" in done.stderr


def test_direction_names_a_series_as_compare_names_keys() -> None:
    """``--direction`` matches the key, the metric or dotted parts (the most specific wins), and
    a name that matches no series is refused with the names there are."""
    rng = random.Random(3)
    rising = series(noisy(rng, 25) + [130.0], "loss_total")
    plain = check_latest(rising, OPTIONS)[0]
    assert (plain.direction, plain.verdict) == ("lower", REGRESSION)  # a loss: lower is better
    for name in ("loss_total", "toy", "toy.loss_total"):
        told = check_latest(rising, replace(OPTIONS, directions={name: "higher"}))[0]
        assert (told.direction, told.verdict) == ("higher", IMPROVEMENT), name
    both = {"toy": "higher", "toy.loss_total": "lower"}
    assert check_latest(rising, replace(OPTIONS, directions=both))[0].direction == "lower"
    with pytest.raises(ConfigError, match=r"--direction loss_totl: .*did you mean 'loss_total'"):
        check_latest(rising, replace(OPTIONS, directions={"loss_totl": "higher"}))
