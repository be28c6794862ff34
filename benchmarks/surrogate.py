"""The surrogate on NAS-Bench-201 cifar10-valid: fit and query time, quality, and a search on it.

Prints, in one run:

* the time to fit on ``--train-cells`` cells (default 1,000), to answer the first query (which
  predicts every cell in one batch) and then one query through the evaluator, against a look-up
  in the table (the ``nb201`` evaluator) timed in the same run;
* Kendall tau and RMSE on every other cell (14,625), for the ``live`` encoding (the default) and
  the plain ``onehot`` one (aim: tau >= 0.8);
* a search (``--searcher``, default ``rea``, the paper's 12,000 s budget of 12-epoch costs) on the
  surrogate against the same search on the table, over ``--seeds`` seeds (default 100): the mean
  and standard deviation of the true mean validation accuracy of the cell each search returns.

    python benchmarks/surrogate.py            # about a minute on a free core
    python benchmarks/surrogate.py --quick    # a smoke run (200 cells, 3 seeds)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, median, print_ratio  # noqa: E402
from driver.search import SearchBudget, Trial, run_search  # noqa: E402
from plugins.nas201.evaluator import NB201Evaluator  # noqa: E402
from plugins.nas201.space import NB201Space, index_to_arch  # noqa: E402
from plugins.nas201.table import columns  # noqa: E402
from plugins.searchers import bench_driver_register_searchers  # noqa: E402
from plugins.surrogate.evaluator import SurrogateEvaluator  # noqa: E402

DATASET = "cifar10-valid"
QUERIES = 2000


def main() -> None:
    args = _parse()
    print(machine_line())
    start = time.perf_counter()
    surrogate = SurrogateEvaluator(None, "nb201", DATASET, args.train_cells, 0, "live", 12,
                                   log=None)
    fit_s = time.perf_counter() - start
    print(f"fit on {args.train_cells} cells (2 models: accuracy, training time): {fit_s:.2f} s")
    for encoding in ("live", "onehot"):
        quality = surrogate.quality if encoding == "live" else SurrogateEvaluator(
            None, "nb201", DATASET, args.train_cells, 0, encoding, 12, log=None).quality
        print(f"encoding {encoding}: {quality.line()}")
    tau = surrogate.quality.kendall_tau
    print(f"KENDALL_TAU nb201 {DATASET} {args.train_cells} training cells = {tau:.4f} "
          f"(aim >= 0.8): {'PASS' if tau >= 0.8 else 'FAIL'}")
    _query_times(surrogate)
    _searches(surrogate, args)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--train-cells", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--searcher", default="rea")
    parser.add_argument("--time-budget", type=float, default=12000.0)
    args = parser.parse_args()
    if args.quick:
        args.train_cells, args.seeds, args.time_budget = 200, 3, 2000.0
    return args


def _query_times(surrogate: SurrogateEvaluator) -> None:
    """Median of 5 rounds of QUERIES distinct-cell queries, surrogate and table interleaved."""
    table = NB201Evaluator(None, DATASET, seed=0, reward="mean")
    start = time.perf_counter()
    surrogate.evaluate(Trial(0, index_to_arch(0)))
    print(f"first query (predicts all 15,625 cells in one batch): "
          f"{time.perf_counter() - start:.3f} s")
    per_query: dict[str, list[float]] = {"surrogate": [], "table": []}
    for round_number in range(5):
        trials = [Trial(i, index_to_arch((round_number * QUERIES + i) % 15625))
                  for i in range(QUERIES)]
        for name, evaluator in (("surrogate", surrogate), ("table", table)):
            start = time.perf_counter()
            for trial in trials:
                evaluator.evaluate(trial)
            per_query[name].append((time.perf_counter() - start) / QUERIES)
    surrogate_s, table_s = median(per_query["surrogate"]), median(per_query["table"])
    print(f"one query after that: surrogate {surrogate_s * 1e3:.3f} ms, table look-up "
          f"{table_s * 1e3:.4f} ms")
    print_ratio("surrogate_query_vs_table_lookup", surrogate_s / table_s, "informational",
                True)


def _searches(surrogate: SurrogateEvaluator, args: argparse.Namespace) -> None:
    searcher = bench_driver_register_searchers()[args.searcher]
    truth = columns(DATASET).mean_valid_accuracy
    space = NB201Space()
    found: dict[str, list[float]] = {"table": [], "surrogate": []}
    for seed in range(args.seeds):
        table = NB201Evaluator(space, DATASET, seed=seed, cost_epochs=12)
        for name, evaluator in (("table", table), ("surrogate", surrogate)):
            outcome = run_search(searcher(space, seed=seed), evaluator,
                                 SearchBudget(max_time_s=args.time_budget))
            found[name].append(truth[space_index(outcome.best.trial.config)])
    for name, values in found.items():
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"{args.searcher} on the {name}, {args.time_budget:.0f} s budget, {args.seeds} "
              f"seeds: true mean valid accuracy of the cell found {statistics.mean(values):.2f} "
              f"+- {spread:.2f}")
    gap = statistics.mean(found["surrogate"]) - statistics.mean(found["table"])
    print(f"surrogate search - table search: {gap:+.2f} accuracy points")


def space_index(arch: object) -> int:
    """The table index of *arch*."""
    from plugins.nas201.space import arch_to_index

    return arch_to_index(str(arch))


if __name__ == "__main__":
    main()
