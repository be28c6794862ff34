"""Inline SVG charts, generated here (no library, no network): lines with a spread band, point
markers with tooltips (``<title>``), and scatter plots. Names go in the HTML around a chart,
never into it, so that no name is ever cut."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Sequence

WIDTH, HEIGHT = 640, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 12, 36
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#d62728")


@dataclass(frozen=True)
class Line:
    """One series of a chart: ``(x, y)`` points, an optional band ``(x, low, high)``, markers
    (indices of points drawn as red regression marks) and each point's tooltip."""

    name: str
    points: Sequence[tuple[float, float]]
    band: Sequence[tuple[float, float, float]] = ()
    tips: Sequence[str] = ()
    marks: Sequence[int] = ()
    dots: bool = True
    step: bool = False  # a staircase (an incumbent over time)
    connect: bool = True  # False: a scatter of points
    colour: str = ""


@dataclass(frozen=True)
class Axes:
    """The data ranges and labels of a chart."""

    x_label: str
    y_label: str
    lines: Sequence[Line] = field(default_factory=tuple)
    x_ticks: Sequence[tuple[float, str]] = ()  # positions with labels; default: numbers


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if low == high:
        pad = abs(low) * 0.05 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _nice(value: float) -> str:
    return f"{value:.4g}"


class _Frame:
    """Maps data to pixels."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.x0, self.x1 = _range(xs)
        self.y0, self.y1 = _range(ys)

    def x(self, value: float) -> float:
        """The pixel column of data x *value*."""
        span = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        return MARGIN_LEFT + (value - self.x0) / (self.x1 - self.x0) * span

    def y(self, value: float) -> float:
        """The pixel row of data y *value* (up is more)."""
        span = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
        return HEIGHT - MARGIN_BOTTOM - (value - self.y0) / (self.y1 - self.y0) * span


def chart(axes: Axes, css_class: str = "chart") -> str:
    """The SVG text of *axes* (an empty string when it has no finite point)."""
    xs = [x for line in axes.lines for x, y in line.points if _finite(x, y)]
    ys = [y for line in axes.lines for x, y in line.points if _finite(x, y)]
    ys += [v for line in axes.lines for _, lo, hi in line.band for v in (lo, hi)
           if math.isfinite(v)]
    if not xs:
        return ""
    frame = _Frame(xs, ys)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
             _grid(frame, axes)]
    for i, line in enumerate(axes.lines):
        parts.append(_line(frame, line, line.colour or COLOURS[i % len(COLOURS)]))
    parts.append("</svg>")
    return "".join(parts)


def _finite(*values: float) -> bool:
    return all(math.isfinite(v) for v in values)


def _grid(frame: _Frame, axes: Axes) -> str:
    bottom, right = HEIGHT - MARGIN_BOTTOM, WIDTH - MARGIN_RIGHT
    out = [f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{right - MARGIN_LEFT}" '
           f'height="{bottom - MARGIN_TOP}" fill="none" stroke="#ccc"/>']
    for k in range(5):
        value = frame.y0 + (frame.y1 - frame.y0) * (k + 0.5) / 5
        y = frame.y(value)
        out.append(f'<line x1="{MARGIN_LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#eee"/><text x="{MARGIN_LEFT - 4}" y="{y + 4:.1f}" '
                   f'text-anchor="end" font-size="10">{_nice(value)}</text>')
    ticks = axes.x_ticks or [(frame.x0 + (frame.x1 - frame.x0) * (k + 0.5) / 5,
                              _nice(frame.x0 + (frame.x1 - frame.x0) * (k + 0.5) / 5))
                             for k in range(5)]
    for value, label in ticks:
        out.append(f'<text x="{frame.x(value):.1f}" y="{bottom + 14}" text-anchor="middle" '
                   f'font-size="10">{escape(label)}</text>')
    out.append(f'<text x="{(MARGIN_LEFT + right) / 2}" y="{HEIGHT - 4}" text-anchor="middle" '
               f'font-size="11">{escape(axes.x_label)}</text><text x="12" '
               f'y="{(MARGIN_TOP + bottom) / 2}" font-size="11" text-anchor="middle" '
               f'transform="rotate(-90 12 {(MARGIN_TOP + bottom) / 2})">'
               f'{escape(axes.y_label)}</text>')
    return "".join(out)


def _line(frame: _Frame, line: Line, colour: str) -> str:
    out = [f'<g class="series" data-name="{escape(line.name)}">']
    if line.band:
        upper = [f"{frame.x(x):.1f},{frame.y(hi):.1f}" for x, _, hi in line.band]
        lower = [f"{frame.x(x):.1f},{frame.y(lo):.1f}" for x, lo, _ in reversed(line.band)]
        out.append(f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{colour}" '
                   f'fill-opacity="0.18" stroke="none"/>')
    if line.connect:
        out.append(f'<polyline points="{_path(frame, line)}" fill="none" stroke="{colour}" '
                   f'stroke-width="1.5"/>')
    marks = set(line.marks)
    for i, (x, y) in enumerate(line.points):
        tip = f"<title>{escape(line.tips[i])}</title>" if i < len(line.tips) else ""
        if i in marks:
            out.append(f'<circle class="regression" cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" '
                       f'r="6" fill="none" stroke="#d62728" stroke-width="2.5">{tip}</circle>')
        elif line.dots:
            out.append(f'<circle class="point" cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" '
                       f'r="3" fill="{colour}">{tip}</circle>')
    out.append("</g>")
    return "".join(out)


def _path(frame: _Frame, line: Line) -> str:
    coords: list[str] = []
    previous: tuple[float, float] | None = None
    for x, y in line.points:
        if line.step and previous is not None:
            coords.append(f"{frame.x(x):.1f},{frame.y(previous[1]):.1f}")
        coords.append(f"{frame.x(x):.1f},{frame.y(y):.1f}")
        previous = (x, y)
    return " ".join(coords)


def legend(lines: Sequence[Line]) -> str:
    """An HTML legend (names in full, wrapping) for the lines of a chart."""
    items = [f'<li><span class="swatch" style="background:{line.colour or COLOURS[i % len(COLOURS)]}">'
             f'</span>{escape(line.name)}</li>' for i, line in enumerate(lines)]
    return f'<ul class="legend">{"".join(items)}</ul>'
