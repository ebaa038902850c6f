"""Text a process wrote, made safe to put on a terminal: its output is untrusted.

A run's log may hold `ESC[2J` (clear the screen), `ESC]0;…BEL` (set the window title), OSC 52 (write the
clipboard), OSC 8 (hyperlinks) or C1 controls; printed as they are, they drive the researcher's terminal
or blank the dashboard. `safe_text` turns every control character into a visible caret form, as `cat -v`
does (`^[[2J`), so nothing is hidden and nothing is executed; only a whole, parsed SGR sequence (colour,
bold) may be kept. Pure: no terminal, no I/O.
"""

from __future__ import annotations

import re

SGR = re.compile(r"\x1b\[[0-9;:]{0,64}m")  # Select Graphic Rendition: colours and weights, nothing else
# C0 but tab and newline, DEL, C1, and the bidirectional overrides that reorder what a line appears to say
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LONE_CR = re.compile(r"\r(?!\n)")


def _visible(match: re.Match) -> str:
    c = match.group()
    code = ord(c)
    if code < 0x20:
        return "^" + chr(code + 0x40)  # ESC -> ^[, BEL -> ^G
    if code == 0x7f:
        return "^?"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str, colour: bool = False) -> str:
    """`text` with every control character shown, not obeyed. Newlines and tabs stay; a carriage return
    that would overwrite a line (progress bars) starts a new one instead, so no text can be hidden behind
    another. `colour`: keep SGR sequences (checked whole, never a prefix of another sequence); else drop
    them, as their text is what was meant."""
    text = _LONE_CR.sub("\n", text).replace("\r\n", "\n")
    if not colour:
        return _CONTROL.sub(_visible, SGR.sub("", text))
    kept = SGR.findall(text)
    parts = [_CONTROL.sub(_visible, part) for part in SGR.split(text)]
    return "".join(p + s for p, s in zip(parts, kept + [""]))
