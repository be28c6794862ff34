"""BOHB's density model for categorical spaces: a TPE-like ratio of two kernel density estimates.

Observations at one fidelity are split into the best ``top_n_percent`` ("good") and the rest
("bad"); each set gets a product of Aitchison-Aitken kernels (keep the option with probability
``1 - bw``, any other with ``bw / (c - 1)``). Candidates are drawn around good points with widened
bandwidths, and the one maximising ``good(x) / bad(x)`` is proposed. Bandwidths follow BOHB's
implementation (statsmodels' ``normal_reference`` rule on the option indices), clipped to
``[min_bandwidth, (c - 1) / c]``. numpy is imported here, when a model is first fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class KDESettings:
    """BOHB's model options (defaults are BOHB's)."""

    top_n_percent: int = 15
    num_samples: int = 64
    min_points_in_model: int = 0  # 0: number of decisions + 1
    bandwidth_factor: float = 3.0
    min_bandwidth: float = 1e-3


def propose(
    encodings: Sequence[Sequence[int]],
    values: Sequence[float],
    sizes: Sequence[int],
    settings: KDESettings,
    rng: Any,
) -> list[int] | None:
    """The most promising encoding under the good/bad density ratio, or None when there are too
    few observations for a model. *rng* is a ``numpy.random.Generator``; *values* are maximised."""
    import numpy as np

    min_points = settings.min_points_in_model or len(sizes) + 1
    if len(values) < min_points + 2:
        return None
    x = np.asarray(encodings, dtype=np.int64)
    order = np.argsort(-np.asarray(values, dtype=float), kind="stable")
    n = len(values)
    n_good = max(min_points, settings.top_n_percent * n // 100)
    n_bad = max(min_points, (100 - settings.top_n_percent) * n // 100)
    good, bad = x[order[:n_good]], x[order[n_good : n_good + n_bad]]
    if len(bad) == 0:
        return None
    c = np.asarray(sizes)
    bw_good, bw_bad = _bandwidths(good, c, settings), _bandwidths(bad, c, settings)
    candidates = _draw_candidates(good, bw_good, c, settings, rng)
    ratio = np.maximum(_density(candidates, good, bw_good, c), 1e-32) / np.maximum(
        _density(candidates, bad, bw_bad, c), 1e-32
    )
    return [int(v) for v in candidates[int(np.argmax(ratio))]]


def _bandwidths(points: Any, sizes: Any, settings: KDESettings) -> Any:
    """statsmodels' normal_reference rule, per decision: 1.06 * std * n^(-1/(4+d))."""
    import numpy as np

    n, d = points.shape
    std = points.std(axis=0, ddof=1) if n > 1 else np.zeros(d)
    bw = 1.06 * std * n ** (-1.0 / (4 + d))
    return np.clip(bw, settings.min_bandwidth, (sizes - 1) / sizes)


def _draw_candidates(good: Any, bw: Any, sizes: Any, settings: KDESettings, rng: Any) -> Any:
    """Around random good points: keep each option with prob. 1 - widened bw, else redraw it."""
    import numpy as np

    m, d = settings.num_samples, good.shape[1]
    wide = np.maximum(bw * settings.bandwidth_factor, settings.min_bandwidth)
    centres = good[rng.integers(len(good), size=m)]
    redraw = rng.random((m, d)) >= 1 - wide
    fresh = rng.integers(0, sizes, size=(m, d))
    return np.where(redraw, fresh, centres)


def _density(points: Any, data: Any, bw: Any, sizes: Any) -> Any:
    """Product-kernel density of each of *points* under the KDE of *data*."""
    import numpy as np

    same = points[:, None, :] == data[None, :, :]
    kernel = np.where(same, 1 - bw, bw / np.maximum(sizes - 1, 1))
    return kernel.prod(axis=2).mean(axis=1)
