"""Reduce each metric's scraped values to one number with its compute method (a plugin).

Every compute method is called through the plugin guard. A method that raises, or returns
anything but a finite number, makes its metric missing with the reason (``plugin error: ...``)
and is a plugin error of the run (exit 7); a result too large for a float (the method raises
OverflowError or returns an infinity) makes the metric missing with the reason ``overflow`` (exit 5
when the metric is required). Every other metric is still reduced and written.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from driver.config import MetricSpec, TaskSpec
from driver.errors import PluginError
from driver.guard import call, finite_number
from driver.records import Record
from driver.scrape import MetricMatches

if TYPE_CHECKING:
    from driver.plugins import Plugins

WORKERS_ENV = "DEEPLEARNING_WORKERS_COUNT"
OVERFLOW = "overflow: the result is too large for a float"


class ReduceContext(Record):
    """What a compute method may need besides the values."""

    workers: int = 1


#: ``fn(values, context) -> float``; values are finite and non-empty, in log order.
ComputeMethod = Callable[[Sequence[float], ReduceContext], float]


class MetricResult(Record):
    """One metric of a run: its value (None if missing), how it was obtained, and why it is
    missing when it is (``error``: None when it simply never matched)."""

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
    pattern: str = ""
    error: str | None = None

    @property
    def missing(self) -> bool:
        """True when the metric has no value (never matched, overflowed, or its method failed)."""
        return self.value is None

    @property
    def plugin_failed(self) -> bool:
        """True when its compute method raised or returned a wrong value."""
        return self.error is not None and self.error.startswith("plugin error")


def workers_for(task: TaskSpec, environ: Mapping[str, str] = os.environ) -> int:
    """The task's ``workers`` key, else the old DEEPLEARNING_WORKERS_COUNT variable, else 1."""
    if task.workers is not None:
        return task.workers
    raw = environ.get(WORKERS_ENV, "")
    return int(raw) if raw.strip().isdigit() and int(raw) > 0 else 1


def reduce_metrics(
    metrics: Sequence[MetricSpec],
    found: Mapping[str, MetricMatches],
    plugins: Plugins,
    context: ReduceContext,
) -> tuple[MetricResult, ...]:
    """Apply each metric's compute method to its values; metrics without values get None."""
    return tuple(_reduce(spec, found.get(spec.name, MetricMatches()), plugins, context)
                 for spec in metrics)


def _reduce(spec: MetricSpec, matches: MetricMatches, plugins: Plugins,
            context: ReduceContext) -> MetricResult:
    value, error = None, None
    if matches.values:
        value, error = _apply(plugins, spec.compute_method, matches.values, context)
    return MetricResult(
        name=spec.name, value=value, compute_method=spec.compute_method,
        matches=matches.matches, values=len(matches.values), nonfinite=matches.nonfinite,
        unparsed=matches.unparsed, unparsed_examples=tuple(matches.unparsed_examples),
        optional=spec.optional, unit=spec.unit, direction=spec.direction, pattern=spec.pattern,
        error=error,
    )


def _apply(plugins: Plugins, name: str, values: Sequence[float],
           context: ReduceContext) -> tuple[float | None, str | None]:
    """``(value, None)``, or ``(None, why)`` for an overflow or a failing method."""
    method = plugins.get("compute_methods", name)
    try:
        value = call(method.origin, "the compute method", _overflow_as_infinity(method.target),
                     values, context, returns=_number_or_infinity)
    except PluginError as exc:
        return None, f"plugin error: {exc}"
    value = float(value)
    return (value, None) if math.isfinite(value) else (None, OVERFLOW)


def _overflow_as_infinity(method: ComputeMethod) -> ComputeMethod:
    def reduce(values: Sequence[float], context: ReduceContext) -> float:
        try:
            return method(values, context)
        except OverflowError:
            return math.inf
    return reduce


def _number_or_infinity(value: Any) -> str | None:
    problem = finite_number(value)
    if problem is None or (not isinstance(value, bool) and isinstance(value, (int, float))
                           and math.isinf(value)):
        return None
    return problem


def quantile(values: Sequence[float], q: float) -> float:
    """The *q* quantile (0 <= q <= 1) of non-empty *values*, linear interpolation between
    closest ranks (numpy's default); exact where the range itself would overflow a float."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    lo, hi, t = ordered[low], ordered[high], rank - low
    spread = hi - lo
    return lo + spread * t if math.isfinite(spread) else lo * (1 - t) + hi * t
