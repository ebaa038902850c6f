"""run.log as the run detail shows it: long lines wrap at the width (`w` toggles) or scroll sideways,
a search term is marked wherever it occurs and its current match stands out, arrows and PgUp/PgDn scroll
(Log's own keys). Matches are counted in run.log's lines, not in the screen lines wrapping makes. A run's
output is untrusted: its control sequences show as `^[[2J`, never reach the terminal (mihd_tui.text)."""

from __future__ import annotations

from collections import deque

from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Log

from ..text import words


MATCH_STYLE = "bold black on yellow"
CURRENT_STYLE = "bold white on dark_orange3"  # the match n/N went to


class TermHighlighter(Highlighter):
    """Marks every occurrence of one term, whatever its case."""

    def __init__(self, term: str = "") -> None:
        super().__init__()
        self.term = term
        self.current = False  # the line being drawn holds the current match

    def highlight(self, text: Text) -> None:
        if self.term:
            text.highlight_words([self.term], style=CURRENT_STYLE if self.current else MATCH_STYLE,
                                 case_sensitive=False)


class LogView(Log):
    BINDINGS = [Binding("w", "toggle_wrap", "Wrap", id="log.wrap", tooltip="wrap long lines, or scroll sideways")]

    def __init__(self, max_lines: int, **kw) -> None:
        super().__init__(max_lines=max_lines, highlight=True, **kw)
        self.highlighter = TermHighlighter()
        self.raw: deque[str] = deque(maxlen=max_lines)  # the lines as read (wrapping splits what is shown)
        self.wrap_lines = True
        self._wrapped_at = 0
        self.current: int | None = None  # index in `raw` of the current match
        self._current_rows = range(0)    # the screen lines it takes

    def start_over(self) -> None:
        """Empty the view for another run.log: also the kept lines a re-wrap would write back."""
        self.raw.clear()
        self.current, self._current_rows = None, range(0)
        self.clear()

    def add_lines(self, lines: list[str]) -> None:
        lines = [part for line in lines for part in words(line).split("\n")]
        self.raw.extend(lines)
        self.write_lines(self._shape(lines))

    def _wrap_width(self) -> int:
        return max(self.scrollable_content_region.width - 1, 20)

    def _shape(self, lines) -> list[str]:
        if not self.wrap_lines:
            return list(lines)
        width = self._wrapped_at = self._wrap_width()
        out = []
        for line in lines:
            line = self._process_line(line)
            out.extend(line[i:i + width] for i in range(0, max(len(line), 1), width))
        return out

    def _rows_of(self, index: int) -> range:
        """The screen lines raw line `index` takes now (wrapping splits a line; the cap drops the oldest)."""
        if not self.wrap_lines:
            first, n = index, 1
        else:
            width = self._wrapped_at or self._wrap_width()
            sizes = [max(-(-len(self._process_line(line)) // width), 1) for line in self.raw]
            first, n = sum(sizes[:index]), sizes[index]
            first -= sum(sizes) - self.line_count  # screen lines the Log's own cap dropped
        return range(first, first + n)

    def matches(self, term: str) -> list[int]:
        """Indexes of the run.log lines (as kept) that hold `term`, whatever its case."""
        term = term.lower()
        return [i for i, line in enumerate(self.raw) if term and term in line.lower()]

    def show_match(self, index: int | None) -> None:
        """Make raw line `index` the current match: marked apart, scrolled into view."""
        self.current = index
        self._current_rows = self._rows_of(index) if index is not None else range(0)
        self._render_line_cache.clear()
        self.refresh()
        if index is not None:
            self.scroll_to(y=max(self._current_rows.start - 2, 0), animate=False)

    def _render_line_strip(self, y: int, rich_style):
        self.highlighter.current = y in self._current_rows
        return super()._render_line_strip(y, rich_style)

    def _reshape(self) -> None:
        at_end = self.is_vertical_scroll_end
        self.clear()
        self.write_lines(self._shape(self.raw), scroll_end=at_end)
        if self.current is not None:
            self._current_rows = self._rows_of(self.current)

    def action_toggle_wrap(self) -> None:
        self.wrap_lines = not self.wrap_lines
        self._reshape()

    def on_resize(self) -> None:
        if self.wrap_lines and self.raw and self._wrap_width() != self._wrapped_at:
            self._reshape()

    def mark(self, term: str) -> None:
        """Highlight `term` on every line (empty: none)."""
        self.highlighter.term = term
        self._render_line_cache.clear()
        self.refresh()
