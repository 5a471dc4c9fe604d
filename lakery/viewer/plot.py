"""Small server-side SVG plots of numeric arrays: a line for 1-D, a heat map for 2-D.

Large arrays are thinned first (at most `MAX_POINTS` points of a line, `MAX_CELLS` cells
per side of a heat map), so a plot stays a few kilobytes whatever the array's size.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_CELLS", "MAX_POINTS", "heatmap_svg", "line_svg"]

MAX_POINTS = 600
"""Points drawn of a 1-D array (evenly spaced)."""
MAX_CELLS = 64
"""Rows and columns drawn of a 2-D array (evenly spaced)."""

_W, _H, _PAD = 640, 220, 36


def line_svg(values: Any) -> str:
    """A line plot of a 1-D numeric array (NaN and infinite values leave gaps)."""
    import numpy as np

    array = np.asarray(values, dtype=float).ravel()
    n = len(array)
    if n == 0:
        return ""
    index = np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int))
    ys = array[index]
    finite = ys[np.isfinite(ys)]
    if finite.size == 0:
        return ""
    low, high = float(finite.min()), float(finite.max())
    if high == low:
        low, high = low - 1, high + 1
    span_x = max(n - 1, 1)

    def x(i: int) -> float:
        return _PAD + (_W - 2 * _PAD) * i / span_x

    def y(v: float) -> float:
        return _H - _PAD + (2 * _PAD - _H) * (v - low) / (high - low)

    segments: list[list[str]] = [[]]
    for i, v in zip(index.tolist(), ys.tolist(), strict=True):
        if math.isfinite(v):
            segments[-1].append(f"{x(i):.1f},{y(v):.1f}")
        elif segments[-1]:
            segments.append([])
    lines = "".join(
        f'<polyline fill="none" stroke="#1b5fc1" stroke-width="1.5" points="{" ".join(s)}"/>'
        for s in segments
        if s
    )
    axes = (
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>'
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#999"/>'
        f'<text x="{_PAD - 4}" y="{_PAD + 4}" text-anchor="end">{_num(high)}</text>'
        f'<text x="{_PAD - 4}" y="{_H - _PAD}" text-anchor="end">{_num(low)}</text>'
        f'<text x="{_PAD}" y="{_H - _PAD + 16}">0</text>'
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 16}" text-anchor="end">{n - 1}</text>'
    )
    return _svg(_W, _H, "line plot", axes + lines)


def heatmap_svg(values: Any) -> str:
    """A heat map of a 2-D numeric array (dark: low, light: high; NaN in grey)."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    if array.ndim != 2 or 0 in array.shape:
        return ""
    rows = np.unique(np.linspace(0, array.shape[0] - 1, min(array.shape[0], MAX_CELLS)))
    cols = np.unique(np.linspace(0, array.shape[1] - 1, min(array.shape[1], MAX_CELLS)))
    grid = array[np.ix_(rows.round().astype(int), cols.round().astype(int))]
    finite = grid[np.isfinite(grid)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    span = (high - low) or 1.0
    cell = max(4, min(24, 480 // max(grid.shape)))
    width, height = cell * grid.shape[1] + 2, cell * grid.shape[0] + 2
    rects = []
    for r, row in enumerate(grid.tolist()):
        for c, v in enumerate(row):
            colour = _colour((v - low) / span) if math.isfinite(v) else "#bbbbbb"
            rects.append(
                f'<rect x="{1 + c * cell}" y="{1 + r * cell}" width="{cell}" '
                f'height="{cell}" fill="{colour}"/>'
            )
    return _svg(width, height, "heat map", "".join(rects))


def _colour(t: float) -> str:
    """Dark blue (0) to yellow (1)."""
    t = min(max(t, 0.0), 1.0)
    r, g, b = int(30 + 220 * t), int(40 + 190 * t), int(110 - 70 * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def _num(value: float) -> str:
    return f"{value:.4g}"


def _svg(width: int, height: int, label: str, inner: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}" '
        f'font-size="11" font-family="sans-serif" fill="#333">{inner}</svg>'
    )
