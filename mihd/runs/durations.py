"""Durations as a researcher types them: `90s`, `5m`, `1h30m`, `2h` -> seconds (mihd.present writes them)."""

from __future__ import annotations

import re

from ..errors import MihdError

_PART = re.compile(r"(\d+(?:\.\d+)?)([hms]?)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}
MAX_DURATION = 366 * 86400.0  # a year: beyond it a number is a typo (or an overflow), not a plan


def parse_duration(text: str, what: str = "--expect") -> float:
    """Seconds in `text`; a bare number means seconds. Raises MihdError naming `what` when malformed, not
    positive, or over a year."""
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
    if total > MAX_DURATION:
        raise MihdError(f"{what} {text!r}: longer than a year; expected a duration such as 90s, 5m, 1h30m")
    return total
