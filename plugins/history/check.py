"""Regression detection over the history: a robust lookback z-score (conbench's method, made
robust), with compare's relative threshold on top (docs/history.md explains the choice).

For each series (``label.metric``) the latest point is compared with the :data:`LOOKBACK` points
before it: their median is the baseline, their spread ``max(1.4826 * MAD, standard deviation)``
the noise. The latest point is a **regression** when it is worse than the baseline by more than
:data:`Z_THRESHOLD` times the noise *and* by more than the threshold (compare's ``5%``): the
z-score keeps noise from raising alarms, the threshold keeps tiny but steady shifts of quiet
metrics from failing a build. Fewer than :data:`MIN_HISTORY` earlier points: no verdict (``new``).
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from driver.experiments.compare import (IMPROVEMENT, NEW, NOT_SIGNIFICANT, REGRESSION, UNCHECKED,
                                        WITHIN, Comparison, Sample, Threshold, Verdict,
                                        default_direction)

if TYPE_CHECKING:
    from plugins.history.rows import Point

from plugins.history import LOOKBACK, MIN_HISTORY, Z_THRESHOLD
#: MAD * this estimates the standard deviation of normal noise.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class HistoryComparison(Comparison):
    """``history check``'s verdicts, as reporters receive a comparison (JUnit, Markdown)."""

    @property
    def title(self) -> str:
        return f"bench-driver history check: {self.baseline}"


@dataclass(frozen=True)
class CheckOptions:
    """How a series is judged (the command line's ``--lookback``, ``--z``, ``--threshold``)."""

    threshold: Threshold = Threshold(0.05, True)
    lookback: int = LOOKBACK
    min_history: int = MIN_HISTORY
    z_threshold: float = Z_THRESHOLD
    directions: Mapping[str, str] | None = None  # metric or key -> higher|lower


def level(history: Sequence[float]) -> tuple[float, float]:
    """The baseline of *history* (its median) and its noise (needs 2+ values)."""
    center = statistics.median(history)
    mad = statistics.median([abs(v - center) for v in history]) * MAD_TO_SIGMA
    return center, max(mad, _stdev(history))


def _z(value: float, center: float, noise: float) -> float:
    if noise == 0:
        return 0.0 if value == center else math.copysign(math.inf, value - center)
    return (value - center) / noise


def _stdev(values: Sequence[float]) -> float:
    """The sample standard deviation in floats (statistics.stdev is exact, and 50x slower)."""
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def judge(key: str, history: Sequence[Point], latest: Point, options: CheckOptions) -> Verdict:
    """The verdict on *latest* against the points before it (*history*, oldest first)."""
    window = [p.value for p in history[-options.lookback:]]
    now = _sample(latest)
    direction = _direction(key, latest, options)
    if len(window) < max(options.min_history, 2):
        return Verdict(key, NEW, direction, None, now, options.threshold)
    center, noise = level(window)
    base = Sample(center, tuple(window), latest.metric, direction)
    if direction is None:
        return Verdict(key, UNCHECKED, None, base, now, options.threshold)
    sign = 1.0 if direction == "lower" else -1.0
    z = sign * _z(latest.value, center, noise)
    worse = sign * (latest.value - base.value)
    p_value = 0.5 * math.erfc(abs(z) / math.sqrt(2))  # one-sided, under normal noise
    if abs(worse) <= options.threshold.allowed(base.value):
        verdict = WITHIN
    elif abs(z) < options.z_threshold:
        verdict = NOT_SIGNIFICANT
    else:
        verdict = REGRESSION if worse > 0 else IMPROVEMENT
    return Verdict(key, verdict, direction, base, now, options.threshold, p_value)


def _direction(key: str, latest: Point, options: CheckOptions) -> str | None:
    """``--direction`` as compare reads it (the most specific name matching the key, its
    metric or dotted parts of it), else what the record says, else the metric's name."""
    from driver.experiments.compare import pick

    chosen = pick(options.directions or {}, key, _sample(latest))
    return chosen or latest.direction or _by_name(latest.metric)


def _sample(point: Point) -> Sample:
    return Sample(point.value, point.values, point.metric, point.direction)


_by_name = functools.lru_cache(maxsize=1024)(default_direction)  # once per metric name


def series_of(points: Sequence[Point]) -> dict[str, list[Point]]:
    """Points grouped by series key, each oldest first (as :meth:`History.points` gives them)."""
    found: dict[str, list[Point]] = {}
    for point in points:
        found.setdefault(point.key, []).append(point)
    return found


def check_latest(points: Sequence[Point], options: CheckOptions) -> list[Verdict]:
    """A verdict on the latest point of every series; ConfigError for a ``--direction`` that
    names no series."""
    from driver.experiments.compare import check_option_names

    series = series_of(points)
    check_option_names([("--direction", name) for name in options.directions or {}],
                       list(series), {k: _sample(s[-1]) for k, s in series.items()},
                       "in the history")
    return [judge(key, line[:-1], line[-1], options) for key, line in series.items()]


def step_starts(series: Sequence[Point], options: CheckOptions) -> list[int]:
    """Indices of the points where a regression starts. Each point is judged against the points
    before it since the last step (either way): after a step the new level becomes the
    baseline, so one regression is marked once, where it starts."""
    starts, since = [], 0
    for i, point in enumerate(series):
        window = series[max(since, i - options.lookback):i]
        verdict = judge(point.key, window, point, options).verdict
        if verdict in (REGRESSION, IMPROVEMENT):
            since = i
            starts += [i] if verdict == REGRESSION else []
    return starts
