"""BOHB's density model for categorical spaces: a TPE-like ratio of two kernel density estimates.

As hpbandster's ``BOHB`` config generator (the definition of BOHB; Falkner et al., ICML 2018)
with every parameter categorical (statsmodels var_type ``'u'``):

* observations at one fidelity are ranked; the best ``n_good = max(min_points, top_n_percent% of
  n)`` are "good", the next ``n_bad = max(min_points, (100 - top_n_percent)% of n)`` are "bad";
  there is a model only when each set has at least ``d + 1`` points (d decisions);
* each set gets a product of Aitchison-Aitken kernels (keep the option with probability
  ``1 - bw``, any other with ``bw / (c - 1)``), bandwidths by statsmodels' ``normal_reference``
  rule on the option indices (``1.06 * std * n^(-1/(4+d))``, population std), at least
  ``min_bandwidth``;
* ``num_samples`` candidates are drawn around random good points: each option kept with
  probability ``1 - bw``, else redrawn uniformly; the one maximising ``good(x) / bad(x)`` wins.
  ``bandwidth_factor`` widens only continuous parameters in hpbandster, so it changes nothing here.

Two deliberate differences: ``c`` is the decision's number of options (statsmodels counts the
distinct values in the data, which divides by zero when a set holds one value), and bandwidths
are capped at ``(c - 1) / c`` (the uniform kernel) so that a kernel is never negative. numpy is
imported here, when a model is first fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class KDESettings:
    """BOHB's model options; defaults are hpbandster's (NB201's task passes its own)."""

    top_n_percent: int = 15
    num_samples: int = 64
    min_points_in_model: int = 0  # 0: number of decisions + 1 (the least hpbandster accepts)
    bandwidth_factor: float = 3.0  # continuous parameters only: no effect on categorical spaces
    min_bandwidth: float = 1e-3

    def __post_init__(self) -> None:
        if not 0 < self.top_n_percent < 100 or self.num_samples < 1 or self.min_bandwidth <= 0:
            raise ValueError(f"bohb: need 0 < top_n_percent < 100, num_samples >= 1 and "
                             f"min_bandwidth > 0, got {self.top_n_percent!r}, "
                             f"{self.num_samples!r}, {self.min_bandwidth!r}")

    def min_points(self, decisions: int) -> int:
        """The fewest observations a model needs, ValueError if set below ``decisions + 1``."""
        if self.min_points_in_model and self.min_points_in_model < decisions + 1:
            raise ValueError(f"bohb: min_points_in_model={self.min_points_in_model!r} is below "
                             f"{decisions + 1} (decisions + 1), the least a KDE needs")
        return self.min_points_in_model or decisions + 1


def split_sizes(observations: int, settings: KDESettings, decisions: int) -> tuple[int, int]:
    """hpbandster's good and bad set sizes for *observations* results at one fidelity:
    ``max(min_points, top_n_percent% of n)`` good, then up to ``max(min_points, the rest%)``."""
    n, min_points = observations, settings.min_points(decisions)
    n_good = min(n, max(min_points, settings.top_n_percent * n // 100))
    return n_good, min(n - n_good, max(min_points, (100 - settings.top_n_percent) * n // 100))


def has_model(observations: int, settings: KDESettings, decisions: int) -> bool:
    """Whether there is a model: at least ``min_points`` results, and the good and the bad set
    each hold at least ``decisions + 1`` points (hpbandster's rule)."""
    n_good, n_bad = split_sizes(observations, settings, decisions)
    return observations >= settings.min_points(decisions) and min(n_good, n_bad) > decisions


def good_and_bad(values: Sequence[float], settings: KDESettings, decisions: int
                 ) -> tuple[Any, Any] | None:
    """Indices (numpy arrays) of the good and bad observations (values maximised, ties in
    arrival order), or None while there is no model."""
    if not has_model(len(values), settings, decisions):
        return None
    import numpy as np

    n_good, n_bad = split_sizes(len(values), settings, decisions)
    order = np.argsort(-np.asarray(values, dtype=float), kind="stable")
    return order[:n_good], order[n_good : n_good + n_bad]


def propose(
    encodings: Sequence[Sequence[int]] | Sequence[int],
    values: Sequence[float],
    sizes: Sequence[int],
    settings: KDESettings,
    rng: Any,
) -> list[int] | None:
    """The most promising encoding under the good/bad density ratio, or None when there are too
    few observations for a model. *encodings* are rows of option indices, or all rows in one
    flat sequence; *rng* is a ``numpy.random.Generator``; *values* are maximised, split by
    :func:`good_and_bad`."""
    split = good_and_bad(values, settings, len(sizes))
    if split is None:
        return None
    import numpy as np

    x = np.asarray(encodings, dtype=np.int64).reshape(len(values), len(sizes))  # or flat
    good, bad = x[split[0]], x[split[1]]
    c = np.asarray(sizes)
    bw_good, bw_bad = bandwidths(good, c, settings), bandwidths(bad, c, settings)
    candidates = _draw_candidates(good, bw_good, c, settings, rng)
    ratio = np.maximum(_density(candidates, good, bw_good, c), 1e-32) / np.maximum(
        _density(candidates, bad, bw_bad, c), 1e-32
    )
    return [int(v) for v in candidates[int(np.argmax(ratio))]]


def bandwidths(points: Any, sizes: Any, settings: KDESettings) -> Any:
    """statsmodels' normal_reference rule per decision, ``1.06 * std * n^(-1/(4+d))`` with the
    population std (``np.std``), clipped to ``[min_bandwidth, (c - 1) / c]``."""
    import numpy as np

    n, d = points.shape
    mean = points.sum(axis=0) / n  # np.std's population std, in fewer numpy calls (hot path)
    std = np.sqrt(np.maximum((points * points).sum(axis=0) / n - mean * mean, 0.0))
    bw = 1.06 * std * n ** (-1.0 / (4 + d))
    return np.clip(bw, settings.min_bandwidth, (sizes - 1) / sizes)


def _draw_candidates(good: Any, bw: Any, sizes: Any, settings: KDESettings, rng: Any) -> Any:
    """Around random good points: keep each option with probability 1 - bw, else draw any."""
    import numpy as np

    m, d = settings.num_samples, good.shape[1]
    centres = good[rng.integers(len(good), size=m)]
    redraw = rng.random((m, d)) >= 1 - bw
    fresh = rng.integers(0, sizes, size=(m, d))
    return np.where(redraw, fresh, centres)


def _density(points: Any, data: Any, bw: Any, sizes: Any) -> Any:
    """Product-kernel density of each of *points* under the KDE of *data*."""
    import numpy as np

    # Each factor is 1 - bw where the option is the same, else bw / (c - 1): the product is
    # prod(other) * exp(sum over same options of log(keep / other)), one matrix product.
    # A decision with one option (c = 1, bw = 0) has no "other": its factor is 1 everywhere.
    other = np.where(sizes > 1, bw / np.maximum(sizes - 1, 1), 1.0)
    keep = np.where(sizes > 1, 1 - bw, 1.0)
    same = (points[:, None, :] == data[None, :, :]).astype(float)
    return np.prod(other) * np.exp(same @ np.log(keep / other)).mean(axis=1)
