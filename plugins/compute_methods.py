"""The built-in compute methods.

``average`` mean; ``last``/``first``; ``total`` sum divided by the worker count (the task's
``workers`` key, or the old ``DEEPLEARNING_WORKERS_COUNT`` variable; 1 when neither is set);
``average_aggregate`` mean times the worker count; ``min``/``max``; ``median``; ``std`` population
standard deviation (0 for one value); ``count`` number of values; ``pNN`` for NN in 1..99 the NNth
percentile with linear interpolation between closest ranks (numpy's default).
"""

from __future__ import annotations

import math
from typing import Sequence

from driver.hookspecs import hookimpl
from driver.reduce import ComputeMethod, ReduceContext, quantile


def average(values: Sequence[float], ctx: ReduceContext) -> float:
    """The mean; exact even where the sum alone would overflow a float (two values of 1e308)."""
    try:
        return math.fsum(values) / len(values)
    except OverflowError:
        return math.fsum(v / len(values) for v in values)


def total(values: Sequence[float], ctx: ReduceContext) -> float:
    return math.fsum(values) / ctx.workers


def average_aggregate(values: Sequence[float], ctx: ReduceContext) -> float:
    return average(values, ctx) * ctx.workers


def median(values: Sequence[float], ctx: ReduceContext) -> float:
    import statistics  # imported when used: it pulls in decimal and fractions

    middle = float(statistics.median(values))  # the mean of the middle two: it can overflow
    return middle if math.isfinite(middle) else quantile(values, 0.5)


def std(values: Sequence[float], ctx: ReduceContext) -> float:
    import statistics

    return float(statistics.pstdev(values))


def percentile(q: float) -> ComputeMethod:
    """The q-th percentile (0 <= q <= 100), linear interpolation between closest ranks."""

    def method(values: Sequence[float], ctx: ReduceContext) -> float:
        return quantile(values, q / 100.0)

    return method


BUILTIN: dict[str, ComputeMethod] = {
    "average": average,
    "last": lambda values, ctx: values[-1],
    "first": lambda values, ctx: values[0],
    "total": total,
    "average_aggregate": average_aggregate,
    "min": lambda values, ctx: min(values),
    "max": lambda values, ctx: max(values),
    "median": median,
    "std": std,
    "count": lambda values, ctx: float(len(values)),
    **{f"p{q}": percentile(q) for q in range(1, 100)},
}


@hookimpl
def bench_driver_register_compute_methods() -> dict[str, ComputeMethod]:
    return BUILTIN
