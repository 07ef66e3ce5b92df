"""Inline SVG charts for the quality site: stacked bars, a heatmap and a strip of cells.

Plain strings, no JavaScript and nothing fetched: a page opens offline, from a file, in any
browser. Each shape carries a ``<title>`` (the browser shows it on hover) and a class the
page's CSS colours and the tests count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 960  # viewBox units; the page scales the chart to its width
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 8, 22  # margins: room for the y labels on the left, the x labels below


@dataclass(frozen=True)
class Segment:
    """One part of a bar: its value, CSS class and hover text."""

    value: float
    css: str
    title: str


@dataclass(frozen=True)
class Column:
    """One bar (or one column of cells): its segments bottom up, and the x label under it (empty: none)."""

    segments: tuple[Segment, ...]
    label: str = ""


def _n(x: float) -> str:
    """A coordinate: one decimal is finer than a pixel at any size the page shows."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``: a round top for an axis."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _open(chart_id: str, height: float, label: str) -> str:
    return (
        f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {_n(height)}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
    )


def _rect(css: str, x: float, y: float, width: float, height: float, title: str) -> str:
    """A shape of a chart, with its hover text."""
    return (
        f'<rect class="{escape(css)}" x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(height)}">'
        f"<title>{escape(title)}</title></rect>"
    )


def _x_labels(columns: Sequence[Column], left: float, step: float, y: float) -> list[str]:
    return [
        f'<text class="x" x="{_n(left + (i + 0.5) * step)}" y="{_n(y)}">{escape(c.label)}</text>'
        for i, c in enumerate(columns)
        if c.label
    ]


def stacked_bars(chart_id: str, label: str, columns: Sequence[Column], height: float = 180) -> str:
    """A bar per column, its segments stacked bottom up, on a y axis from 0 to a round top with three gridlines."""
    plot = height - TOP - BOTTOM
    top = nice_ceiling(max((sum(s.value for s in c.segments) for c in columns), default=0))
    step = (WIDTH - LEFT - RIGHT) / max(len(columns), 1)
    parts = [_open(chart_id, height, label)]
    for fraction in (0, 0.5, 1):
        y = TOP + plot * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_n(y)}" y2="{_n(y)}"/>')
        parts.append(f'<text class="y" x="{LEFT - 6}" y="{_n(y + 4)}">{top * fraction:,.0f}</text>')
    gap = min(1.0, step * 0.15)
    for i, column in enumerate(columns):
        base = TOP + plot
        for segment in column.segments:
            if segment.value <= 0:
                continue
            h = plot * segment.value / top
            base -= h
            parts.append(_rect(segment.css, LEFT + i * step + gap, base, step - 2 * gap, h, segment.title))
    parts += _x_labels(columns, LEFT, step, height - 6)
    parts.append("</svg>")
    return "".join(parts)


def heatmap(chart_id: str, label: str, rows: Sequence[str], columns: Sequence[Column], cell: float = 14) -> str:
    """A grid of cells: each column's segments are its cells, one per row name in order, coloured by class."""
    left = LEFT + 96  # row names are column names: longer than axis numbers
    step = (WIDTH - left - RIGHT) / max(len(columns), 1)
    height = TOP + cell * len(rows) + BOTTOM
    parts = [_open(chart_id, height, label)]
    for r, name in enumerate(rows):
        parts.append(f'<text class="y" x="{left - 6}" y="{_n(TOP + (r + 0.75) * cell)}">{escape(name)}</text>')
    for i, column in enumerate(columns):
        for r, segment in enumerate(column.segments):
            parts.append(_rect(f"cell {segment.css}", left + i * step, TOP + r * cell, step, cell, segment.title))
    parts += _x_labels(columns, left, step, height - 6)
    parts.append("</svg>")
    return "".join(parts)


def strip(chart_id: str, label: str, cells: Sequence[Segment], height: float = 18) -> str:
    """One row of equal cells, one per item (a month), each coloured by its class: a state at a glance. Its cells
    line up with the bars of a ``stacked_bars`` chart of the same items above it."""
    step = (WIDTH - LEFT - RIGHT) / max(len(cells), 1)
    parts = [_open(chart_id, height, label)]
    for i, segment in enumerate(cells):
        parts.append(_rect(f"cell {segment.css}", LEFT + i * step, 0, step, height, segment.title))
    parts.append("</svg>")
    return "".join(parts)
