"""Check boxes and radio buttons whose state shows in their glyph, not only in its colour: a plain screen
capture or a colour-blind researcher reads `▐X▌` checked and `▐ ▌` not, `●` chosen and `○` not."""

from __future__ import annotations

from textual.widgets import Checkbox, RadioButton


class _Marked:
    """A toggle drawing MARKS[its value] inside its button (Textual draws one glyph for both, coloured)."""

    MARKS = ("", "")

    @property
    def BUTTON_INNER(self) -> str:  # noqa: N802  (Textual's name for it)
        return self.MARKS[bool(self.value)]


class MarkedCheckbox(_Marked, Checkbox):
    MARKS = (" ", "X")


class MarkedRadioButton(_Marked, RadioButton):
    MARKS = ("○", "●")
