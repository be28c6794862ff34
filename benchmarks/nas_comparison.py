"""Every registered searcher on NAS-Bench-201 under the named protocols, many seeds, beside the
published values; and the same searches with N trials in flight on the simulated clock.

    python benchmarks/nas_comparison.py --seeds 100 --out bench-runs/nas201
    python benchmarks/nas_comparison.py --protocols transfer --concurrency 1 4 16 --no-sanity \\
        --out bench-runs/nas201-async        # 5 searchers x 100 seeds x 3 concurrencies

Protocols (plugins/nas201/protocols.py, docs/nas.md): ``transfer``, the paper's (search
cifar10-valid for 12,000 simulated s with the searcher preset ``nb201``; report the chosen cell on
every data set) and ``per-dataset``, NATS-Bench's (each data set on its own, 20,000 / 40,000 /
120,000 s, preset ``nats-bench``). A trial's value is one random training run's 200-epoch
validation accuracy; its cost that run's 200-epoch train_time x 12/200. The reported accuracy is
the mean validation accuracy over runs of the cell with the best observed value; published
values are printed beside ours where REFERENCE.md has them (``n/a`` elsewhere; the table holds
no test accuracy, so our CIFAR-10 test column is ``n/a``).

Sanity checks that cannot be tuned (both also tests; skip with --no-sanity): random search with
noise-free values and 100 draws against the exact expectation, per reported column, and R-EA >
random search under the protocol's budget, one-sided Mann-Whitney U, p < 0.01. Exit status 1 if
one fails. With --out it writes ``anytime_<protocol>_<dataset>_c<N>.png``: the incumbent's mean
accuracy against simulated time, mean over seeds with a +-1 std band. It prints the wall time of
every table and the total.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from driver.plugins import load_plugins  # noqa: E402
from driver.search import Searcher  # noqa: E402
from plugins.nas201.protocols import (  # noqa: E402
    PROTOCOLS, Protocol, ProtocolRun, published_text, random_search_gaps, run_protocol,
)
from plugins.nas201.table import columns  # noqa: E402

ORDER = ["random", "rea", "reinforce", "bohb", "local_search"]


def compare(chosen: Protocol, dataset: str, searchers: dict[str, type[Searcher]],
            concurrency: int, args: argparse.Namespace) -> dict[str, list[ProtocolRun]]:
    """Every searcher over every seed, in ``--jobs`` processes; prints the table and the wall
    time."""
    seeds = args.seeds
    for column in chosen.columns(dataset):  # load the tables before the clock starts (and forks)
        columns(column[0])
    start = time.perf_counter()
    jobs = [(cls, chosen, dataset, seed, concurrency) for cls in searchers.values()
            for seed in range(seeds)]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            done = pool.map(_one, jobs, chunksize=max(1, len(jobs) // (8 * args.jobs)))
    else:
        done = [_one(job) for job in jobs]
    runs = {name: done[i * seeds : (i + 1) * seeds] for i, name in enumerate(searchers)}
    wall_s = time.perf_counter() - start
    print_table(chosen, dataset, runs, concurrency, seeds)
    queries = sum(r.evaluations for rs in runs.values() for r in rs)
    print(f"  wall time: {wall_s:.2f} s for {len(searchers)} searchers x {seeds} seeds, "
          f"{queries} evaluations in {args.jobs} processes: {1e6 * wall_s / queries:.1f} us "
          f"per query (ask+lookup+tell)")
    return runs


def _one(job: tuple[type[Searcher], Protocol, str, int, int]) -> ProtocolRun:
    cls, chosen, dataset, seed, concurrency = job
    return run_protocol(cls, chosen, dataset, seed, concurrency=concurrency)


def print_table(chosen: Protocol, dataset: str, runs: dict[str, list[ProtocolRun]],
                concurrency: int, seeds: int) -> None:
    """Per searcher: mean evaluations and, per reported column, ours beside the published."""
    cols = chosen.columns(dataset)
    print(f"\n{chosen.name}: search {dataset} for {chosen.budget_s(dataset):,.0f} simulated s, "
          f"preset {chosen.preset}, concurrency {concurrency}, {seeds} seeds; "
          f"mean +- std (%), ours / published")
    print(f"  {'searcher':<13}{'evals':>7}" + "".join(f"{c[0] + ' ' + c[1]:>34}" for c in cols))
    for name, rs in runs.items():
        cells = "".join(f"{_ours(rs, c) + ' / ' + published_text(chosen, name, c):>34}"
                        for c in cols)
        print(f"  {name:<13}{statistics.mean(r.evaluations for r in rs):>7.1f}{cells}")
    best = "".join(f"{_optimal(c) + ' / ' + published_text(chosen, 'optimal', c):>34}"
                   for c in cols)
    print(f"  {'optimal':<13}{'':>7}{best}")


def _ours(runs: Sequence[ProtocolRun], column: tuple[str, str]) -> str:
    values = [r.reported[column] for r in runs]
    if None in values:
        return "n/a"
    held = [float(v) for v in values if v is not None]
    return f"{statistics.mean(held):.2f} +- {statistics.stdev(held):.2f}"


def _optimal(column: tuple[str, str]) -> str:
    return "n/a" if column[1] != "x-valid" else f"{max(columns(column[0]).mean_valid_accuracy):.2f}"


def sanity(chosen: Protocol, dataset: str, runs: dict[str, list[ProtocolRun]],
           seeds: int, samples: int) -> bool:
    """Both untunable checks; prints each and returns whether both passed."""
    ok = True
    for column, mean, se, expected in random_search_gaps(chosen, dataset, seeds, samples):
        passed = abs(mean - expected) < 2 * se
        ok &= passed
        print(f"  sanity: random search, {samples} draws (noise-free), {seeds} seeds, "
              f"{column[0]} {column[1]}: {mean:.3f} (SE {se:.3f}) vs exact {expected:.3f}: "
              f"{abs(mean - expected) / se:.2f} SE -> {'OK (< 2 SE)' if passed else 'FAIL'}")
    if {"rea", "random"} <= set(runs):
        column = (dataset, "x-valid")
        p = mann_whitney_greater([r.reported[column] for r in runs["rea"]],
                                 [r.reported[column] for r in runs["random"]])
        ok &= p < 0.01
        print(f"  sanity: R-EA > random search under the budget, {seeds} seeds, one-sided "
              f"Mann-Whitney U: p = {p:.2g} -> {'OK (p < 0.01)' if p < 0.01 else 'FAIL'}")
    return ok


def mann_whitney_greater(larger: Sequence[Any], smaller: Sequence[Any]) -> float:
    """p-value of the one-sided Mann-Whitney U test that *larger* tends to be larger."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(larger, smaller, alternative="greater").pvalue)


def plot_anytime(chosen: Protocol, dataset: str, runs: dict[str, list[ProtocolRun]],
                 concurrency: int, out: Path) -> Path:
    """The incumbent's mean accuracy vs simulated time: mean over seeds with a +-1 std band,
    drawn from the time every seed has its first result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, chosen.budget_s(dataset), 241)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rs in runs.items():
        curves = np.array([_on_grid(r.trace, grid) for r in rs])
        # NaN (not drawn) until every seed has a result: a mean over a few early seeds misleads
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(grid, mean, label=name)
        ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="simulated time (s)", ylabel="incumbent's validation accuracy (%)",
           title=f"NAS-Bench-201 {dataset}, {chosen.name}, {concurrency} in flight: "
                 f"{len(next(iter(runs.values())))} seeds, mean +- std")
    finals = [r.trace[-1][1] for rs in runs.values() for r in rs]
    ax.set_ylim(float(np.percentile(finals, 1)) - 1, max(columns(dataset).mean_valid_accuracy) + 0.3)
    ax.legend(loc="lower right")
    path = out / f"anytime_{chosen.name}_{dataset}_c{concurrency}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _on_grid(trace: Sequence[tuple[float, float]], grid: Any) -> Any:
    """The step function of *trace* at each grid time (NaN before the first result)."""
    import numpy as np

    times = np.array([t for t, _ in trace])
    values = np.array([v for _, v in trace])
    where = np.searchsorted(times, grid, side="right") - 1
    return np.where(where >= 0, values[np.maximum(where, 0)], np.nan)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--datasets", nargs="+", help="default: every data set a protocol searches")
    parser.add_argument("--searchers", nargs="+", help="default: every registered searcher")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1],
                        help="trials in flight (one table and plot each), e.g. 1 4 16")
    parser.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--sanity-samples", type=int, default=100)
    parser.add_argument("--no-sanity", action="store_true", help="skip the sanity checks")
    parser.add_argument("--out", help="folder for the anytime plots (no plots without it)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    registry = load_plugins(autoload=False).registry("searchers")
    names = args.searchers or sorted(registry, key=lambda n: (ORDER.index(n) if n in ORDER else 99, n))
    searchers = {name: registry[name] for name in names}
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    ok, start = True, time.perf_counter()
    for chosen in (PROTOCOLS[name] for name in args.protocols):
        for dataset in [d for d in chosen.budgets_s if not args.datasets or d in args.datasets]:
            for concurrency in args.concurrency:
                runs = compare(chosen, dataset, searchers, concurrency, args)
                if out is not None:
                    print(f"  plot: {plot_anytime(chosen, dataset, runs, concurrency, out)}")
            if not args.no_sanity:
                ok &= sanity(chosen, dataset, runs, args.seeds, args.sanity_samples)
    load = os.getloadavg()[0]
    print(f"\ntotal wall time: {time.perf_counter() - start:.1f} s ({args.jobs} processes, "
          f"{os.cpu_count()} cores, load average {load:.1f} at the end)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
