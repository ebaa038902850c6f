"""A Select that takes typing while closed: a letter picks the next option starting with it, and a letter no
option starts with says so, so a user typing into a form field never loses keys silently."""

from __future__ import annotations

from textual import events
from textual.widgets import Select


class TypedSelect(Select):
    def on_key(self, event: events.Key) -> None:
        if self.expanded or not (event.character and event.character.isprintable() and event.character != " "):
            return
        event.stop()
        values = [v for _, v in self._options if v is not Select.BLANK]
        hits = [v for v in values if str(v).lower().startswith(event.character.lower())]
        if not hits:
            self.notify(f"{self.id}: no choice starts with {event.character!r} ({', '.join(map(str, values))})",
                        severity="warning", timeout=4)
            return
        later = [v for v in hits if self.value in values and values.index(v) > values.index(self.value)]
        self.value = (later or hits)[0]
