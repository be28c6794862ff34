"""Statistics over repetitions: a summary per metric, outlier flags and two-sample tests.

* :func:`describe` gives ``n``, ``median``, ``mean``, ``std`` (the *sample* standard deviation,
  n - 1 in the denominator; ``None`` for a single value), ``min``, ``max`` and the positions of
  outliers. A statistic too large for a float (the mean of values near 1.8e308 is not, their
  spread may be) is None and named in ``overflow``: it is never infinity.
* Outliers follow Tukey's fences: a value below ``Q1 - 1.5 IQR`` or above ``Q3 + 1.5 IQR``, the
  quartiles taken with linear interpolation between closest ranks (numpy's default, as the ``pNN``
  compute methods: both use :func:`driver.reduce.quantile`). With three values or fewer nothing
  can be flagged. Outliers are flagged, never dropped: every statistic uses every value.
* :func:`welch_t_test` is Welch's unequal-variances t-test, two-sided, in pure Python (the t
  distribution through the regularized incomplete beta function). :func:`mann_whitney_u` is the
  two-sided Mann-Whitney U test; it needs scipy, imported only when it is called.

The summary documents built from these are in :mod:`driver.experiments.summary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from driver.errors import ConfigError
from driver.reduce import quantile

#: Statistics a repeated run can report as its value (``--statistic``); median is the default.
STATISTICS = ("median", "mean", "min", "max")
TESTS = ("welch", "mannwhitney")
OUTLIER_IQR_FACTOR = 1.5


@dataclass(frozen=True)
class Stats:
    """The summary of one metric's values over repetitions (in repetition order)."""

    values: tuple[float, ...]
    n: int
    median: float | None
    mean: float | None
    std: float | None  # sample standard deviation; None with one value or on overflow
    min: float
    max: float
    outliers: tuple[int, ...]  # positions in ``values`` outside Tukey's fences
    overflow: tuple[str, ...] = ()  # statistics too large for a float (left None)

    def statistic(self, name: str) -> float | None:
        """One of :data:`STATISTICS` by name."""
        return statistic_of(self, name)


def statistic_of(summary: object, name: str) -> float | None:
    """The statistic *name* (one of :data:`STATISTICS`) of a summary with those attributes."""
    if name not in STATISTICS:
        raise ConfigError(f"statistic {name!r}: expected one of {', '.join(STATISTICS)}")
    value = getattr(summary, name)
    return None if value is None else float(value)


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: its name, statistic and two-sided p-value."""

    test: str
    statistic: float
    p_value: float


def describe(values: Sequence[float]) -> Stats:
    """Summarise *values* (at least one, all finite)."""
    import statistics  # imported when used: it pulls in decimal and fractions

    if not values:
        raise ValueError("describe() needs at least one value")
    data = tuple(float(v) for v in values)
    found = {"median": _finite_or_none(lambda: quantile(data, 0.5)),
             "mean": _finite_or_none(lambda: _mean(data)),
             "std": _finite_or_none(lambda: statistics.stdev(data)) if len(data) > 1 else None}
    overflow = tuple(k for k, v in found.items() if v is None and (k != "std" or len(data) > 1))
    return Stats(values=data, n=len(data), min=min(data), max=max(data),
                 outliers=tuple(i for i, flag in enumerate(outlier_flags(data)) if flag),
                 overflow=overflow, **found)


def _mean(data: Sequence[float]) -> float:
    import statistics

    try:
        return statistics.fmean(data)
    except OverflowError:  # the sum overflows, the mean need not
        return math.fsum(v / len(data) for v in data)


def _finite_or_none(compute: Callable[[], float]) -> float | None:
    try:
        value = float(compute())
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def outlier_flags(values: Sequence[float]) -> list[bool]:
    """True for each value outside Tukey's fences ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]``."""
    if len(values) < 4:
        return [False] * len(values)
    q1, q3 = quantile(values, 0.25), quantile(values, 0.75)
    reach = OUTLIER_IQR_FACTOR * (q3 - q1)
    return [not (q1 - reach <= v <= q3 + reach) for v in values]


def welch_t_test(baseline: Sequence[float], new: Sequence[float]) -> TestResult:
    """Welch's t-test of ``mean(new) - mean(baseline)``; each side needs two values or more.

    When both sides have zero variance the difference is certain: p is 0 if the means differ and
    1 if they are equal.
    """
    import statistics

    _need_two(baseline, new)
    na, nb = len(baseline), len(new)
    ma, mb = statistics.fmean(baseline), statistics.fmean(new)
    sa, sb = statistics.variance(baseline) / na, statistics.variance(new) / nb
    if sa + sb == 0:
        return TestResult("welch", 0.0 if ma == mb else math.copysign(math.inf, mb - ma),
                          1.0 if ma == mb else 0.0)
    t = (mb - ma) / math.sqrt(sa + sb)
    # Welch-Satterthwaite; with variances so tiny that their squares underflow, scale first
    scale = max(sa, sb)
    ra, rb = sa / scale, sb / scale
    df = (ra + rb) ** 2 / (ra * ra / (na - 1) + rb * rb / (nb - 1))
    return TestResult("welch", t, t_two_sided_p(t, df))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with *df* degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return min(1.0, regularized_beta(df / 2.0, 0.5, df / (df + t * t)))


def mann_whitney_u(baseline: Sequence[float], new: Sequence[float]) -> TestResult:
    """The two-sided Mann-Whitney U test (scipy's exact or asymptotic method, as it chooses)."""
    _need_two(baseline, new)
    try:
        from scipy.stats import mannwhitneyu
    except ImportError:
        raise ConfigError("--test mannwhitney needs scipy: pip install scipy "
                          "(or use the default --test welch, which needs nothing)") from None
    result = mannwhitneyu(list(new), list(baseline), alternative="two-sided")
    return TestResult("mannwhitney", float(result.statistic), float(result.pvalue))


def significance(baseline: Sequence[float], new: Sequence[float], test: str) -> TestResult:
    """Run the test named *test* (one of :data:`TESTS`)."""
    if test == "welch":
        return welch_t_test(baseline, new)
    if test == "mannwhitney":
        return mann_whitney_u(baseline, new)
    raise ConfigError(f"--test {test!r}: expected one of {', '.join(TESTS)}")


def regularized_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, Lentz's method)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _need_two(baseline: Sequence[float], new: Sequence[float]) -> None:
    if len(baseline) < 2 or len(new) < 2:
        raise ValueError("a two-sample test needs at least two values on each side")
