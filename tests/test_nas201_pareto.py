"""Pareto fronts of NAS-Bench-201 cells: the front against brute force, the search's points, the
files (pure Python except the plot)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from driver.errors import DataError
from plugins.nas201 import costs
from plugins.nas201.pareto import (
    COSTS, CellPoint, pareto_front, plot_front, search_points, write_csv,
)
from plugins.nas201.space import index_to_arch
from test_nas201_costs import needs_table


def dominated(p: CellPoint, q: CellPoint, cost: str) -> bool:
    """q dominates p."""
    pc, qc = getattr(p, cost), getattr(q, cost)
    return q.accuracy >= p.accuracy and qc <= pc and (q.accuracy > p.accuracy or qc < pc)


def random_points(n: int, seed: int) -> list[CellPoint]:
    rng = random.Random(seed)
    return [CellPoint(i, index_to_arch(i), rng.choice([80.0, 85.0, rng.uniform(80, 90)]),
                      rng.choice([0.1, 0.5, rng.uniform(0.1, 1)]), rng.uniform(5, 200),
                      rng.choice([None, 0.01, rng.uniform(0.01, 0.03)])) for i in range(n)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("cost", list(COSTS))
def test_the_front_is_exactly_the_non_dominated_points(seed: int, cost: str) -> None:
    points = random_points(300, seed)
    front = pareto_front(points, cost)
    known = [p for p in points if getattr(p, cost) is not None]
    expected = {p.index for p in known if not any(dominated(p, q, cost) for q in known)}
    # of exact duplicates (same cost and accuracy) the front keeps one, the lowest index
    assert {p.index for p in front} <= expected
    assert {(p.accuracy, getattr(p, cost)) for p in front} == \
        {(p.accuracy, getattr(p, cost)) for p in known if p.index in expected}
    assert [getattr(p, cost) for p in front] == sorted(getattr(p, cost) for p in front)
    assert [p.accuracy for p in front] == sorted(p.accuracy for p in front)


def test_unknown_cost() -> None:
    with pytest.raises(ValueError, match="unknown cost 'size'"):
        pareto_front([], "size")


def write_trials(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_search_points_average_repeats_and_use_the_networks_counts(tmp_path: Path) -> None:
    a, b = index_to_arch(11), index_to_arch(284)
    trials = write_trials(tmp_path / "trials.jsonl", [
        {"config": a, "value": 60.0, "info": {"latency_s": 0.5}},
        {"config": b, "value": 40.0, "info": {"latency_s": 0.25}},
        {"config": a, "value": 70.0, "info": {"latency_s": 0.7}},
        {"config": b, "value": 10.0, "info": {"mean_valid_accuracy": 42.0, "latency_s": 0.25}},
    ])
    points = {p.index: p for p in search_points(trials, "cifar100")}
    assert points[11].accuracy == 65.0 and points[11].latency_s == pytest.approx(0.6)
    assert points[11].runs == 2 and points[284].accuracy == 41.0  # a table's mean wins
    assert points[11].params_mb == costs.params_mb(a, "cifar100")
    assert points[284].flops_m == costs.flops_m(b, "cifar100")


def test_bad_trials_files_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read the trials file"):
        search_points(tmp_path / "absent.jsonl", "cifar10")
    (tmp_path / "bad.jsonl").write_text('{"config": 1}\n{oops\n')
    with pytest.raises(DataError, match="line 2: not JSON"):
        search_points(tmp_path / "bad.jsonl", "cifar10")
    write_trials(tmp_path / "novalue.jsonl", [{"config": index_to_arch(0)}])
    with pytest.raises(DataError, match="line 1: expected an object with 'config' and a numeric"):
        search_points(tmp_path / "novalue.jsonl", "cifar10")
    write_trials(tmp_path / "odd.jsonl", [{"config": "|x~0|", "value": 1.0}])
    with pytest.raises(DataError, match="line 1: '|x~0|' is not a NAS-Bench-201 arch string"):
        search_points(tmp_path / "odd.jsonl", "cifar10")


def test_csv_and_png(tmp_path: Path) -> None:
    points = random_points(50, 0)
    front = pareto_front(points, "flops_m")
    write_csv(front, tmp_path / "front.csv")
    with (tmp_path / "front.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["index"]) for r in rows] == [p.index for p in front]
    assert list(rows[0]) == ["index", "arch", "accuracy", "params_mb", "flops_m", "latency_s",
                             "runs"]
    plot_front(points, front, "flops_m", tmp_path / "front.png", "title", reference=front)
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["front.csv", "front.png"]  # no temp


@needs_table
def test_the_table_front_over_all_cells() -> None:
    from plugins.nas201.pareto import table_points

    points = table_points("cifar10-valid")
    assert len(points) == 15_625
    front = pareto_front(points, "params_mb")
    assert front[-1].accuracy == max(p.accuracy for p in points)  # the best cell is on it
    assert front[0].params_mb == min(p.params_mb for p in points)
    for p in front:
        assert not any(dominated(p, q, "params_mb") for q in points)
