"""The footer with the app's own keys (`q` Quit, `?` Help) first, then the overrun banner's while it shows,
then `k` Kill, then the screen's. It holds only the keys that fit whole in the terminal's width (a narrow one drops the last
keys, never cuts a label); ctrl+p and the rest are in help (`?`)."""

from __future__ import annotations

from rich.cells import cell_len
from textual.widgets import Footer

FIRST = ("quit", "help")  # actions of the app's bindings
URGENT = "overrun"        # the overrun banner's actions: next, while it asks
STOP = "kill"             # the key that stops a run: kept before the focused table's own keys, however narrow


def _rank(widget) -> int:
    action = getattr(widget, "action", "") or ""
    return 0 if action in FIRST else 1 if action.startswith(URGENT) else 2 if action == STOP else 3


def _width(widget) -> int:
    """Columns a compact footer key takes: its key, a space, its description, a space."""
    return cell_len(getattr(widget, "key_display", "") or "") + 1 + cell_len(getattr(widget, "description", "") or "") + 1


def _keys(widgets) -> list[tuple]:
    """What the footer shows of its keys: a recompose that would show the same is skipped."""
    return [(getattr(w, "key", None), getattr(w, "key_display", None), getattr(w, "description", None),
             getattr(w, "action", None), getattr(w, "_disabled", None)) for w in widgets]


class KeysFooter(Footer):
    """Recomposed only when the keys it shows change: Textual's footer builds, styles and lays out a widget per
    key again whenever any binding may have changed (each focus change, each tab switch), which took most of
    a key's answer on a loaded machine."""

    def __init__(self, **kw) -> None:
        kw.setdefault("compact", True)
        kw.setdefault("show_command_palette", False)
        super().__init__(**kw)
        self._shown: list[tuple] | None = None

    def _kept(self) -> list:
        room, kept = self.app.size.width, []
        for widget in sorted(super().compose(), key=_rank):
            room -= _width(widget)
            if room < 0:
                break
            kept.append(widget)
        return kept

    def compose(self):
        kept = self._kept()
        self._shown = _keys(kept) if self._bindings_ready else None
        self.styles.grid_size_columns = max(len(kept), 1)
        return iter(kept)

    async def recompose(self) -> None:
        if self._shown is not None and self.is_attached and _keys(self._kept()) == self._shown:
            return
        await super().recompose()

    def on_resize(self) -> None:
        self.call_later(self.recompose)
