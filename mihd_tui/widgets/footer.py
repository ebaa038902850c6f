"""The footer with the app's own keys (`q` Quit, `?` Help) first, so a narrow terminal cuts the screen's
less general keys at the right edge, never these two."""

from __future__ import annotations

from textual.widgets import Footer

FIRST = ("quit", "help")  # actions of the app's bindings


class KeysFooter(Footer):
    def __init__(self, **kw) -> None:
        kw.setdefault("compact", True)
        super().__init__(**kw)

    def compose(self):
        widgets = list(super().compose())
        first = [w for w in widgets if getattr(w, "action", None) in FIRST]
        return iter(first + [w for w in widgets if w not in first])
