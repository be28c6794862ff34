"""Statistics over repetitions: a summary per metric, outlier flags and two-sample tests.

* :func:`describe` gives ``n``, ``median``, ``mean``, ``std`` (the *sample* standard deviation,
  n - 1 in the denominator; ``None`` for a single value), ``min``, ``max`` and the positions of
  outliers.
* Outliers follow Tukey's fences: a value below ``Q1 - 1.5 IQR`` or above ``Q3 + 1.5 IQR``, the
  quartiles taken with linear interpolation between closest ranks (numpy's default, as the ``pNN``
  compute methods). With three values or fewer nothing can be flagged. Outliers are flagged,
  never dropped: every statistic uses every value.
* :func:`welch_t_test` is Welch's unequal-variances t-test, two-sided, in pure Python (the t
  distribution through the regularized incomplete beta function). :func:`mann_whitney_u` is the
  two-sided Mann-Whitney U test; it needs scipy, imported only when it is called.
* :func:`set_summary` builds a set's ``summary.json`` (schema ``bench-driver/summary``, version 1)
  from its runs' records; :func:`load_document` reads it back, refusing unknown versions.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from driver import results
from driver.results import SCHEMA_VERSION
from driver.errors import ConfigError

#: Statistics a repeated run can report as its value (``--statistic``); median is the default.
STATISTICS = ("median", "mean", "min", "max")
DEFAULT_STATISTIC = "median"
TESTS = ("welch", "mannwhitney")
OUTLIER_IQR_FACTOR = 1.5
SUMMARY_SCHEMA = "bench-driver/summary"
#: A run with one of these statuses in its record.json has finished (resume does not rerun it).
FINISHED = (results.OK, results.FAILED, results.MISSING_METRICS, results.TIMEOUT)
#: Runs whose values enter the statistics: the command itself succeeded.
MEASURED = (results.OK, results.MISSING_METRICS)


@dataclass(frozen=True)
class Stats:
    """The summary of one metric's values over repetitions (in repetition order)."""

    values: tuple[float, ...]
    n: int
    median: float
    mean: float
    std: float | None  # sample standard deviation; None with one value
    min: float
    max: float
    outliers: tuple[int, ...]  # positions in ``values`` outside Tukey's fences

    def statistic(self, name: str) -> float:
        """One of :data:`STATISTICS` by name."""
        if name not in STATISTICS:
            raise ConfigError(f"statistic {name!r}: expected one of {', '.join(STATISTICS)}")
        return float(getattr(self, name))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: every statistic, the values and the outlier positions."""
        return {"n": self.n, "median": self.median, "mean": self.mean, "std": self.std,
                "min": self.min, "max": self.max, "values": list(self.values),
                "outliers": list(self.outliers)}


@dataclass(frozen=True)
class TestResult:
    """A two-sample test: its name, statistic and two-sided p-value."""

    test: str
    statistic: float
    p_value: float


def describe(values: Sequence[float]) -> Stats:
    """Summarise *values* (at least one, all finite)."""
    if not values:
        raise ValueError("describe() needs at least one value")
    data = tuple(float(v) for v in values)
    return Stats(
        values=data,
        n=len(data),
        median=statistics.median(data),
        mean=statistics.fmean(data),
        std=statistics.stdev(data) if len(data) > 1 else None,
        min=min(data),
        max=max(data),
        outliers=tuple(i for i, flag in enumerate(outlier_flags(data)) if flag),
    )


def summarise_metrics(
    runs: Sequence[Mapping[str, Any]], metas: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per metric over measured *runs* (each with ``index`` and ``values``): statistics, the
    repetition indices the values come from, how many runs lacked it, and *metas* (direction...).
    """
    names = list(metas) + [n for r in runs for n in r["values"] if n not in metas]
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(names):
        pairs = [(r["index"], r["values"][name]) for r in runs if name in r["values"]]
        entry: dict[str, Any] = {**metas.get(name, {}), "n": 0}
        if pairs:
            entry.update(describe([v for _, v in pairs]).to_dict())
            entry["outliers"] = [pairs[p][0] for p in entry["outliers"]]  # as repetition indices
        entry["repetitions"] = [i for i, _ in pairs]
        entry["missing"] = len(runs) - len(pairs)
        summary[name] = entry
    return summary


def quantile(values: Sequence[float], q: float) -> float:
    """The *q* quantile (0 <= q <= 1), linear interpolation between closest ranks."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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
    _need_two(baseline, new)
    na, nb = len(baseline), len(new)
    ma, mb = statistics.fmean(baseline), statistics.fmean(new)
    sa, sb = statistics.variance(baseline) / na, statistics.variance(new) / nb
    if sa + sb == 0:
        return TestResult("welch", 0.0 if ma == mb else math.copysign(math.inf, mb - ma),
                          1.0 if ma == mb else 0.0)
    t = (mb - ma) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa * sa / (na - 1) + sb * sb / (nb - 1))
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


# --- the summary document of a set of repetitions -----------------------------------------------


def run_entry(kind: str, index: int, seed: int, record: Mapping[str, Any],
              resumed: bool) -> dict[str, Any]:
    """One run of a set as the summary lists it, from its run record (a loaded record.json)."""
    metrics = record.get("metrics", {})
    return {
        "kind": kind, "index": index, "seed": seed, "status": record.get("status"),
        "exit_code": record.get("exit_code"), "signal": record.get("signal"),
        "duration_s": record.get("duration_s"), "run_dir": record.get("run_dir"),
        "record": str(Path(str(record.get("run_dir"))) / "record.json"), "resumed": resumed,
        "values": record_values(record),
        "missing_required": [n for n, m in metrics.items()
                             if m.get("value") is None and not m.get("optional")],
        "errors": list(record.get("errors", [])),
    }


def record_values(record: Mapping[str, Any]) -> dict[str, float]:
    """A run record's values: each metric that matched, then the sampled resource metrics."""
    values = {n: m["value"] for n, m in record.get("metrics", {}).items()
              if m.get("value") is not None}
    values.update({n: v for n, v in record.get("resource_metrics", {}).items() if v is not None})
    return values


def record_metas(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``direction``, ``unit`` and ``optional`` of each metric a run record declares."""
    return {n: {k: m.get(k) for k in ("direction", "unit", "optional")}
            for n, m in record.get("metrics", {}).items()}


def set_summary(header: Mapping[str, Any], runs: list[dict[str, Any]],
                metas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The summary.json document: *header* (task, repetitions, warmup, base_seed, statistic,
    experiment, variant, values), every run, and per metric the statistics over the measured
    repetitions (those whose command succeeded: status ok or missing_metrics)."""
    measured = [r for r in runs if r["kind"] == "repetition" and r["status"] in MEASURED]
    planned = header["repetitions"] + header["warmup"]
    done = sum(1 for r in runs if r["status"] in FINISHED)
    return {"schema": SUMMARY_SCHEMA, "schema_version": SCHEMA_VERSION, **header,
            "complete": done == planned, "runs": runs,
            "metrics": summarise_metrics(measured, metas)}


def flat_from_summary(
    summary: Mapping[str, Any], framework: str | None, suffix: str | None
) -> dict[str, float]:
    """The old flat object for a set: ``[framework.]task.metric[.suffix]`` -> its statistic."""
    prefix = f"{framework}.{summary['task']}" if framework else summary["task"]
    return {f"{prefix}.{name}{'.' + suffix if suffix else ''}": m[summary["statistic"]]
            for name, m in summary["metrics"].items() if m["n"]}
