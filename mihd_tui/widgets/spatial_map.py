"""Spatial domain maps drawn with coloured half-blocks: each terminal cell shows two square-ish pixels.

The colours (predicted clusters matched to the truth domains) come from mihd.domain_colours, and so does the
legend a map may carry under it (`■ Layer1  ■ Layer2 …`, wrapped to the map's width).
"""

from __future__ import annotations

import math

from rich.style import Style
from rich.text import Text
from textual.widget import Widget


def raster(x: list[float], y: list[float], colours: list[str | None], width: int, height: int) -> list[list]:
    """A height x width grid of colours (None = background), spots splatted at their scaled positions."""
    grid: list[list] = [[None] * width for _ in range(height)]
    if not x or width < 2 or height < 2:
        return grid
    x0, x1, y0, y1 = min(x), max(x), min(y), max(y)
    xr, yr = max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)
    scale = min((width - 1) / xr, (height - 1) / yr)
    ox, oy = (width - 1 - xr * scale) / 2, (height - 1 - yr * scale) / 2
    side = max(1, round(math.sqrt(xr * yr / len(x)) * scale))
    for xi, yi, col in zip(x, y, colours):
        px = int(round(ox + (xi - x0) * scale - (side - 1) / 2))
        py = int(round(oy + (yi - y0) * scale - (side - 1) / 2))
        for r in range(max(py, 0), min(py + side, height)):
            row = grid[r]
            for c in range(max(px, 0), min(px + side, width)):
                row[c] = col
    return grid


def half_blocks(grid: list[list]) -> Text:
    """Two raster rows per text row: `▀` with the upper pixel as foreground, the lower as background."""
    text = Text()
    for r in range(0, len(grid) - 1, 2):
        for up, lo in zip(grid[r], grid[r + 1]):
            if up is None and lo is None:
                text.append(" ")
            elif lo is None:
                text.append("▀", Style(color=up))
            elif up is None:
                text.append("▄", Style(color=lo))
            else:
                text.append("▀", Style(color=up, bgcolor=lo))
        text.append("\n")
    text.rstrip()
    return text


def legend_lines(items: list[tuple[str, str]], width: int) -> list[Text]:
    """`■ name` entries in their colours, as many to a line as fit in `width`."""
    lines: list[Text] = []
    line = Text()
    for name, colour in items:
        entry = len(name) + 2
        if line.cell_len and line.cell_len + 2 + entry > width:
            lines.append(line)
            line = Text()
        if line.cell_len:
            line.append("  ")
        line.append("■", Style(color=colour))
        line.append(f" {name}")
    if line.cell_len:
        lines.append(line)
    return lines


class SpatialMap(Widget):
    """One map (predicted or truth); `set_spots` gives it coordinates, a colour per spot and, optionally,
    the legend drawn under it."""

    DEFAULT_CSS = "SpatialMap { height: 1fr; width: 1fr; }"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._spots: tuple[list, list, list] | None = None
        self._legend: list[tuple[str, str]] = []
        self._cache: tuple | None = None

    def set_spots(self, x: list[float], y: list[float], colours: list[str | None],
                  legend: list[tuple[str, str]] | None = None) -> None:
        self._spots, self._legend, self._cache = (x, y, colours), list(legend or []), None
        self.refresh()

    def clear(self) -> None:
        """No map (another run opened)."""
        self._spots, self._legend, self._cache = None, [], None
        self.refresh()

    def render(self) -> Text:
        if self._spots is None:
            return Text("no spatial map", style="dim")
        w, h = self.content_size.width, self.content_size.height
        if self._cache is None or self._cache[0] != (w, h):
            key = legend_lines(self._legend, w) if h > 4 else []
            key = key[:max(h // 3, 1)] if key else []  # the map keeps at least two thirds of the height
            text = half_blocks(raster(*self._spots, w, (h - len(key)) * 2))
            for line in key:
                text.append("\n")
                text.append_text(line)
            self._cache = ((w, h), text)
        return self._cache[1]
