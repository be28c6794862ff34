"""Draw a run's ``timeline.csv`` as ``timeline.png``: memory of the task over time.

The top panel shows the process tree's resident memory (``cpu_rss_mib``) and its process count;
the bottom panel, when the run had GPUs, each GPU's memory held by the task (solid), memory used
on the device by everyone (dashed) and utilisation (dotted, right axis). matplotlib is optional
(``pip install 'bench-driver[plot]'``) and imported only here, drawing with the Agg backend
through the object-oriented API, so no global pyplot state is touched.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any

from driver.errors import ConfigError
from driver.results import load_record, write_bytes_atomic

TIMELINE = "timeline.csv"
IMAGE = "timeline.png"
_GPU_COLUMN = re.compile(r"gpu(\d+)_(used_mib|task_mib|util_pct)$")


def plot_timeline(run_dir: Path) -> Path:
    """Write ``run_dir/timeline.png`` from ``run_dir/timeline.csv``; return the image's path.

    Raises :class:`ConfigError` when matplotlib is missing or the timeline is missing or empty.
    """
    run_dir = Path(run_dir)
    series = read_timeline(run_dir / TIMELINE)
    figure_class = _figure_class()
    gpus = sorted({int(m.group(1)) for c in series if (m := _GPU_COLUMN.match(c))})
    panels = 2 if gpus else 1
    figure = figure_class(figsize=(10, 3.2 * panels + 0.6), layout="constrained")
    axes = figure.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    _draw_cpu(axes[0], series)
    if gpus:
        _draw_gpus(axes[1], series, gpus)
    axes[-1].set_xlabel("time since sampling started (s)")
    figure.suptitle(f"{plot_title(run_dir)}: memory over time")
    image = run_dir / IMAGE
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=110)
    write_bytes_atomic(image, png.getvalue())
    return image


def plot_title(run_dir: Path) -> str:
    """What the run measured, in the user's words: ``TASK``, with the experiment, variant and
    repetition of a run of an experiment (``RUNS/EXPERIMENT/VARIANT/REP``) or the repetition of
    a set; the directory's name when the run has no record."""
    try:
        task = load_record(run_dir).task
    except ConfigError:
        return run_dir.name
    kind = "warmup " + run_dir.name[len("warmup-"):] if run_dir.name.startswith("warmup-") \
        else f"repetition {run_dir.name}" if run_dir.name.isdigit() else ""
    experiment = run_dir.parent.parent
    if kind and (experiment / "experiment.json").is_file():
        return f"{task}, {experiment.name}/{run_dir.parent.name} ({kind})"
    return f"{task} ({kind})" if kind else task


def read_timeline(path: Path) -> dict[str, list[float]]:
    """The columns of a timeline, empty cells as NaN (drawn as gaps); ConfigError if unusable."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise ConfigError(
            f"no timeline to plot: {str(path)!r} does not exist (is this a run folder, and did "
            f"the run sample anything?)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read timeline {str(path)!r}: {exc}") from None
    if not rows or "time_s" not in rows[0]:
        raise ConfigError(f"timeline {str(path)!r} is empty or has no 'time_s' column")
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    if not body:
        raise ConfigError(f"timeline {str(path)!r} has a header but no samples")
    return {name: [_number(r[i]) for r in body] for i, name in enumerate(header)}


def _number(cell: str) -> float:
    try:
        return float(cell) if cell else math.nan
    except ValueError:
        return math.nan


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            "plotting needs matplotlib, which is not installed: pip install 'bench-driver[plot]'"
        ) from None
    return Figure


def _integer_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _draw_cpu(ax: Any, series: dict[str, list[float]]) -> None:
    time_s = series["time_s"]
    if "cpu_rss_mib" in series:
        ax.plot(time_s, series["cpu_rss_mib"], color="tab:blue", label="process tree RSS")
    ax.set_ylabel("CPU memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if "processes" in series:
        count = ax.twinx()
        count.step(time_s, series["processes"], where="post", color="tab:gray", alpha=0.6,
                   label="processes")
        count.set_ylabel("processes")
        count.set_ylim(bottom=0)
        count.yaxis.set_major_locator(_integer_locator())
        _legend(count, "upper right")
    _legend(ax, "upper left")


def _draw_gpus(ax: Any, series: dict[str, list[float]], gpus: list[int]) -> None:
    time_s = series["time_s"]
    util_axis = ax.twinx()
    for n, index in enumerate(gpus):
        color = f"C{n % 10}"
        for kind, style, label in (("task_mib", "-", "task"), ("used_mib", "--", "device used")):
            column = f"gpu{index}_{kind}"
            if column in series:
                ax.plot(time_s, series[column], style, color=color, label=f"GPU {index} {label}")
        util = f"gpu{index}_util_pct"
        if util in series:
            util_axis.plot(time_s, series[util], ":", color=color, alpha=0.7,
                           label=f"GPU {index} util")
    ax.set_ylabel("GPU memory (MiB)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    _legend(ax, "upper left")
    util_axis.set_ylabel("utilisation (%)")
    util_axis.set_ylim(0, 105)
    _legend(util_axis, "upper right")


def _legend(ax: Any, where: str) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty legend is only a warning
        ax.legend(loc=where, fontsize="small")
