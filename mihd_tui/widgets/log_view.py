"""run.log as the run detail shows it: long lines wrap at the width (`w` toggles) or scroll sideways,
a search term is marked wherever it occurs, arrows and PgUp/PgDn scroll (Log's own keys)."""

from __future__ import annotations

from collections import deque

from rich.highlighter import Highlighter
from rich.text import Text
from textual.binding import Binding
from textual.widgets import Log

MATCH_STYLE = "bold black on yellow"


class TermHighlighter(Highlighter):
    """Marks every occurrence of one term, whatever its case."""

    def __init__(self, term: str = "") -> None:
        super().__init__()
        self.term = term

    def highlight(self, text: Text) -> None:
        if self.term:
            text.highlight_words([self.term], style=MATCH_STYLE, case_sensitive=False)


class LogView(Log):
    BINDINGS = [Binding("w", "toggle_wrap", "Wrap", id="log.wrap", tooltip="wrap long lines, or scroll sideways")]

    def __init__(self, max_lines: int, **kw) -> None:
        super().__init__(max_lines=max_lines, highlight=True, **kw)
        self.highlighter = TermHighlighter()
        self.raw: deque[str] = deque(maxlen=max_lines)  # the lines as read (wrapping splits what is shown)
        self.wrap_lines = True
        self._wrapped_at = 0

    def add_lines(self, lines: list[str]) -> None:
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

    def _reshape(self) -> None:
        at_end = self.is_vertical_scroll_end
        self.clear()
        self.write_lines(self._shape(self.raw), scroll_end=at_end)

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
