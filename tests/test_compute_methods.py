"""Built-in compute methods, reached through the plugin registry as the driver uses them."""

from __future__ import annotations

import pytest

from driver.config import MetricSpec
from driver.plugins import load_plugins
from driver.reduce import ReduceContext, reduce_metrics, workers_for
from driver.config import TaskSpec
from driver.scrape import MetricMatches

VALUES = [4.0, 1.0, 3.0, 2.0, 10.0]
PLUGINS = load_plugins(autoload=False)
METHODS = PLUGINS.registry("compute_methods")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("average", 4.0), ("last", 10.0), ("first", 4.0), ("total", 20.0), ("min", 1.0),
        ("max", 10.0), ("median", 3.0), ("count", 5.0), ("std", 3.1622776601683795),
        ("p50", 3.0), ("p90", 7.6), ("p99", 9.76), ("p1", 1.04), ("average_aggregate", 4.0),
    ],
)
def test_method(name, expected):
    assert METHODS[name](VALUES, ReduceContext()) == pytest.approx(expected)


def test_worker_aware_total_and_average_aggregate():
    ctx = ReduceContext(workers=4)
    assert METHODS["total"](VALUES, ctx) == 5.0
    assert METHODS["average_aggregate"](VALUES, ctx) == 16.0


def test_workers_from_task_key_then_old_environment_variable():
    task = TaskSpec("t", "true", ())
    assert workers_for(task, {}) == 1
    assert workers_for(task, {"DEEPLEARNING_WORKERS_COUNT": "3"}) == 3
    assert workers_for(TaskSpec("t", "true", (), workers=2), {"DEEPLEARNING_WORKERS_COUNT": "3"}) == 2


def test_reduce_marks_missing_and_keeps_counts():
    specs = [MetricSpec("a", "a=(.*)", "average"), MetricSpec("b", "b=(.*)", "last", optional=True)]
    found = {"a": MetricMatches([1.0, 2.0], matches=3, nonfinite=1)}
    a, b = reduce_metrics(specs, found, PLUGINS, ReduceContext())
    assert (a.value, a.matches, a.values, a.nonfinite, a.missing) == (1.5, 3, 2, 1, False)
    assert b.value is None and b.missing and b.optional
