"""One-off cross-check of BOHB's density model (plugins/searchers/kde.py) against statsmodels'
``KDEMultivariate``, which hpbandster's BOHB uses (var_type ``'u'``, ``normal_reference``).

statsmodels is not a dependency: run it in a throwaway environment,

    python -m venv /tmp/kdecheck && /tmp/kdecheck/bin/pip install statsmodels pluggy
    /tmp/kdecheck/bin/python benchmarks/bohb_kde_crosscheck.py

It prints the largest bandwidth difference (ours before our cap at (c-1)/c, both capped the same
way) and the largest relative density difference when ours is given statsmodels' bandwidths and
its count of levels (the distinct values in the data), over 50 random data sets.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    try:
        import numpy as np
        import statsmodels.api as sm
    except ImportError:
        print("needs numpy and statsmodels (not dependencies); see the docstring", file=sys.stderr)
        return 2
    from plugins.searchers.kde import KDESettings, _density, bandwidths

    rng = np.random.default_rng(0)
    worst_bw = worst_pdf = 0.0
    for _ in range(50):
        n, d = int(rng.integers(8, 60)), 6
        data = rng.integers(0, 5, size=(n, d))
        kde = sm.nonparametric.KDEMultivariate(data=data, var_type="u" * d, bw="normal_reference")
        ours = bandwidths(data, np.full(d, 5), KDESettings(min_bandwidth=1e-12))
        worst_bw = max(worst_bw, float(np.max(np.abs(ours - np.clip(kde.bw, 1e-12, 4 / 5)))))
        levels = np.array([len(np.unique(data[:, j])) for j in range(d)])
        points = rng.integers(0, 5, size=(20, d))
        theirs = np.array([kde.pdf(p) for p in points])
        mine = _density(points, data, np.asarray(kde.bw), levels)
        worst_pdf = max(worst_pdf, float(np.max(np.abs(mine - theirs) / theirs)))
    print(f"bandwidth: max |ours - statsmodels| = {worst_bw:.3g} (50 data sets, n 8..59, d 6)")
    print(f"density: max relative difference = {worst_pdf:.3g} (statsmodels' bandwidths and levels)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
