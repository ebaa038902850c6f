"""Durations as a researcher types and reads them: `90s`, `5m`, `1h30m`, `2h` <-> seconds."""

from __future__ import annotations

import re

from ..errors import MihdError

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def parse_duration(text: str, what: str = "--expect") -> float:
    """Seconds in `text`; a bare number means seconds. Raises MihdError naming `what` when malformed."""
    s = str(text).strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or (m.group(2) == "" and m.end() != len(s)):
            raise MihdError(f"{what} {text!r}: expected a duration such as 90s, 5m, 1h30m")
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if not s or total <= 0:
        raise MihdError(f"{what} {text!r}: expected a positive duration such as 90s, 5m, 1h30m")
    return total


def fmt_duration(seconds: float | None) -> str:
    """Compact `42s`, `3m05s`, `1h02m`; `-` when unknown."""
    if seconds is None:
        return "-"
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def fmt_age(seconds: float | None) -> str:
    """Coarse age (`now`, `12m`, `3h`, `2d`) so the inventory does not redraw every second."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f}{unit}"
    return "now"
