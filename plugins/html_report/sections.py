"""The report's sections as HTML fragments, from the history: trends per task and metric, the
last run's memory timeline, experiment pivots, NAS anytime curves and Pareto fronts.

Every section renders even without data (it then says what would fill it), so a reader, and the
browser test, can tell an empty history from a broken page.
"""

from __future__ import annotations

import csv
import json
import statistics
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from driver.report import fmt
from plugins.html_report.svg import Axes, Line, chart, legend

if TYPE_CHECKING:
    from plugins.history.check import CheckOptions
    from plugins.history.rows import Point
    from plugins.history.store import History

#: Points on the shared time grid of an anytime band.
GRID_POINTS = 60


def section(name: str, title: str, body: str) -> str:
    """One ``<section>`` of the report (the page's script checks and indexes each)."""
    return (f'<section class="report-section" id="{name}" data-section="{name}">'
            f'<h2>{escape(title)}</h2>{body}</section>')


def empty(text: str) -> str:
    """The body of a section with nothing to show."""
    return f'<p class="empty">{escape(text)}</p>'


def table(head: Sequence[str], rows: Sequence[Sequence[str]], css_class: str = "") -> str:
    """An HTML table; cells wrap, nothing is cut."""
    cells = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{css_class}"><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>'


def trends(points: Sequence[Point], options: CheckOptions) -> str:
    """Per series: values over commits and time, the spread of repetitions as a band, the
    points where a regression starts circled in red; then a table of those regressions."""
    from plugins.history.check import series_of, step_starts
    from plugins.history.actions import short_commit

    if not points:
        return empty("No values yet: run a task, or `bench-driver history import DIR`.")
    blocks, found = [], []
    for key, series in series_of(points).items():
        marks = step_starts(series, options)
        found += [(key, series[i]) for i in marks]
        line = Line(key, [(i, p.value) for i, p in enumerate(series)],
                    [(i, p.low, p.high) for i, p in enumerate(series)],
                    [_tip(p) for p in series], marks)
        step = max(1, len(series) // 6)
        ticks = [(i, short_commit(p.git_commit)[:7] if p.git_commit else p.started_at[5:16])
                 for i, p in enumerate(series) if i % step == 0]
        unit = f" ({series[-1].unit})" if series[-1].unit else ""
        blocks.append(f'<div class="trend" data-series="{escape(key)}"><h3>{escape(key)}</h3>'
                      f'{chart(Axes("run, by commit (or date)", "value" + unit, [line], ticks))}'
                      f'<p class="caption">{len(series)} point(s), {len(marks)} regression(s); '
                      f'latest {fmt(series[-1].value)} on {escape(series[-1].started_at)}</p>'
                      f'</div>')
    rows = [(key, p.started_at, short_commit(p.git_commit), fmt(p.value), p.where)
            for key, p in found]
    summary = table(("series", "started", "commit", "value", "where"), rows, "regressions") \
        if rows else '<p class="no-regressions">No regression in the history.</p>'
    return ('<p><label>Filter series: <input id="series-filter" type="search" '
            'placeholder="task or metric"></label></p>' + summary + "".join(blocks))


def _tip(p: Point) -> str:
    spread = f", {fmt(p.low)}..{fmt(p.high)} over {p.n} runs" if p.n > 1 else ""
    return (f"{p.key} = {fmt(p.value)}{spread}; {p.started_at}; commit {p.git_commit or '-'}; "
            f"host {p.host or '-'}")


def timeline(history: History) -> str:
    """The memory timeline of the run that started last (its timeline.csv)."""
    run_dir = history.last_run_dir()
    path = Path(run_dir) / "timeline.csv" if run_dir else None
    if path is None or not path.is_file():
        return empty(f"No timeline.csv for the last run ({run_dir or 'none recorded'}).")
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    columns = [c for c in (rows[0] if rows else {}) if c != "time_s" and c.endswith("_mib")]
    lines = [Line(c, [(float(r["time_s"]), float(r[c])) for r in rows if r.get(c)], dots=False)
             for c in columns]
    lines = [line for line in lines if line.points]
    if not lines:
        return empty(f"{path}: no memory samples in it.")
    return (f'<p class="caption">{escape(str(path))}</p>'
            f'{chart(Axes("time (s)", "memory (MiB)", lines))}{legend(lines)}')


def experiments(history: History) -> str:
    """Each experiment's latest index as a pivot: one row per variant, one column per metric."""
    found = history.experiments()
    if not found:
        return empty("No experiment recorded: `bench-driver experiment NAME` adds one.")
    return "".join(_pivot(history, doc) for doc in found)


def _pivot(history: History, doc: dict[str, Any]) -> str:
    values: dict[str, dict[str, float]] = {}
    for variant in doc.get("variants", ()):
        directory = (Path(doc["directory"]) / variant["summary"]).parent.absolute()
        values[variant["name"]] = history.set_metrics(str(directory))
    metrics = list(dict.fromkeys(m for row in values.values() for m in row))
    rows = [[name] + [fmt(row.get(m)) for m in metrics] for name, row in values.items()]
    return (f'<div class="pivot"><h3>{escape(doc["experiment"])} (task '
            f'{escape(doc.get("task", "?"))})</h3>'
            f'{table(["variant"] + metrics, rows, "pivot")}</div>')


def nas(history: History) -> str:
    """Anytime curves (the incumbent over search time; median and min..max over the runs of a
    task or variant) and each label's Pareto front (value against trial cost) of its last run."""
    traces: dict[str, list[list[tuple[float, float, float]]]] = {}
    for label, run_dir, _ in history.run_dirs():
        trials = _trials(Path(run_dir) / "trials.jsonl")
        if trials:
            traces.setdefault(label, []).append(trials)
    if not traces:
        return empty("No search recorded a trials.jsonl in its run directory.")
    curves = [_anytime(label, runs) for label, runs in traces.items()]
    body = (f'<h3>Anytime: the best value found over search time</h3>'
            f'{chart(Axes("search time (s)", "best value so far", curves), "chart anytime")}'
            f'{legend(curves)}')
    for label, runs in traces.items():
        body += _pareto(label, runs[-1])
    return body


def _trials(path: Path) -> list[tuple[float, float, float]]:
    """``(time_s, value, cost_s)`` of each counted, not failed trial of a trials file."""
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
            if "failed" not in (row.get("info") or {}):
                found.append((float(row["time_s"]), float(row["value"]),
                              float(row.get("cost_s") or 0.0)))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line cut by an interrupted search
    return sorted(found)


def _incumbent(trials: Sequence[tuple[float, float, float]], t: float) -> float | None:
    best = [v for time_s, v, _ in trials if time_s <= t]
    return max(best) if best else None


def _anytime(label: str, runs: Sequence[Sequence[tuple[float, float, float]]]) -> Line:
    end = max(trial[0] for run in runs for trial in run)
    grid = [end * k / (GRID_POINTS - 1) for k in range(GRID_POINTS)]
    points, band = [], []
    for t in grid:
        found = [v for v in (_incumbent(run, t) for run in runs) if v is not None]
        if found:
            points.append((t, statistics.median(found)))
            band.append((t, min(found), max(found)))
    return Line(f"{label} ({len(runs)} run(s))", points, band, dots=False, step=True)


def _pareto(label: str, trials: Sequence[tuple[float, float, float]]) -> str:
    ordered = sorted(trials, key=lambda t: (t[2], -t[1]))
    front: list[tuple[float, float]] = []
    for _, value, cost in ordered:
        if not front or value > front[-1][1]:
            front.append((cost, value))
    cloud = Line(f"{label}: trials", [(c, v) for _, v, c in trials], connect=False,
                 colour="#9ecae1", tips=[f"value {fmt(v)}, cost {fmt(c)} s" for _, v, c in trials])
    line = Line(f"{label}: Pareto front ({len(front)} point(s))", front, step=True,
                colour="#d62728", tips=[f"value {fmt(v)}, cost {fmt(c)} s" for c, v in front])
    return (f'<div class="pareto"><h3>Pareto front of {escape(label)}: value against trial '
            f'cost</h3>{chart(Axes("trial cost (s)", "value", [cloud, line]), "chart pareto")}'
            f'{legend([cloud, line])}</div>')
