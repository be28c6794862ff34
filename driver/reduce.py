"""Reduce each metric's scraped values to one number with its compute method (a plugin)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from driver.config import MetricSpec, TaskSpec
from driver.scrape import MetricMatches

WORKERS_ENV = "DEEPLEARNING_WORKERS_COUNT"


@dataclass(frozen=True)
class ReduceContext:
    """What a compute method may need besides the values."""

    workers: int = 1


#: ``fn(values, context) -> float``; values are finite and non-empty, in log order.
ComputeMethod = Callable[[Sequence[float], ReduceContext], float]


@dataclass(frozen=True)
class MetricResult:
    """One metric of a run: its value (None if it never matched) and how it was obtained."""

    name: str
    value: float | None
    compute_method: str
    matches: int
    values: int
    nonfinite: int = 0
    unparsed: int = 0
    unparsed_examples: tuple[str, ...] = ()
    optional: bool = False
    unit: str | None = None
    direction: str | None = None

    @property
    def missing(self) -> bool:
        """True when no finite value was scraped for this metric."""
        return self.value is None


def workers_for(task: TaskSpec, environ: Mapping[str, str] = os.environ) -> int:
    """The task's ``workers`` key, else the old DEEPLEARNING_WORKERS_COUNT variable, else 1."""
    if task.workers is not None:
        return task.workers
    raw = environ.get(WORKERS_ENV, "")
    return int(raw) if raw.strip().isdigit() and int(raw) > 0 else 1


def reduce_metrics(
    metrics: Sequence[MetricSpec],
    found: Mapping[str, MetricMatches],
    methods: Mapping[str, ComputeMethod],
    context: ReduceContext,
) -> tuple[MetricResult, ...]:
    """Apply each metric's compute method to its values; metrics without values get None."""
    return tuple(_reduce(spec, found.get(spec.name, MetricMatches()), methods, context)
                 for spec in metrics)


def _reduce(
    spec: MetricSpec,
    matches: MetricMatches,
    methods: Mapping[str, ComputeMethod],
    context: ReduceContext,
) -> MetricResult:
    value = None
    if matches.values:
        value = float(methods[spec.compute_method](matches.values, context))
    return MetricResult(
        name=spec.name,
        value=value,
        compute_method=spec.compute_method,
        matches=matches.matches,
        values=len(matches.values),
        nonfinite=matches.nonfinite,
        unparsed=matches.unparsed,
        unparsed_examples=tuple(matches.unparsed_examples),
        optional=spec.optional,
        unit=spec.unit,
        direction=spec.direction,
    )
