"""The bytes that make a terminal raise its own desktop notification, for a dashboard nobody is looking at.

OSC 9 (iTerm2, WezTerm, Ghostty) or OSC 777 `notify` (urxvt, foot, VTE terminals such as Fedora's GNOME
Terminal; WezTerm and Ghostty too), then a bell, which any terminal (and tmux, for a window in the
background) turns into a mark or a sound. A terminal that knows both OSCs would show two notices, so one is
chosen: `MIHD_TERMINAL_NOTIFY` = osc9 | osc777 | both | bell | off, else OSC 777 where TERM is foot/rxvt or
VTE_VERSION is set, else OSC 9. Inside tmux each OSC is wrapped for passthrough (which tmux forwards only
with `set -g allow-passthrough on`).
Run-derived text is stripped of every control character first, so a run's label can neither end the
sequence early nor start one of its own.
"""

from __future__ import annotations

import unicodedata
from typing import Mapping

ESC, BEL, ST = "\x1b", "\x07", "\x1b\\"
MAX_CHARS = 200  # of title and body each: a notification, not a log
KINDS = ("osc9", "osc777", "both", "bell", "off")


def plain(text: str) -> str:
    """`text` on one line without C0, DEL or C1 controls (newlines and tabs become blanks), cut to MAX_CHARS."""
    out = "".join(" " if c in "\t\n\r" else c for c in str(text) if c in "\t\n\r" or unicodedata.category(c) != "Cc")
    return " ".join(out.split())[:MAX_CHARS]


def choose(env: Mapping[str, str]) -> str:
    """Which form this terminal gets (KINDS)."""
    asked = env.get("MIHD_TERMINAL_NOTIFY", "").strip().lower()
    if asked in KINDS:
        return asked
    rxvt_like = env.get("TERM", "").startswith(("foot", "rxvt")) or env.get("VTE_VERSION")
    return "osc777" if rxvt_like and not env.get("TMUX") else "osc9"  # in tmux, TERM is tmux's own


def _tmux(sequence: str) -> str:
    """tmux's passthrough: DCS tmux; <sequence, each ESC doubled> ST."""
    return f"{ESC}Ptmux;{sequence.replace(ESC, ESC + ESC)}{ST}"


def notification(title: str, body: str, env: Mapping[str, str]) -> str:
    """What to write to the terminal (a str, as Textual's driver takes it); '' when turned off."""
    kind = choose(env)
    if kind == "off":
        return ""
    title, body = plain(title).replace(";", ","), plain(body)  # `;` separates OSC 777's fields
    text = f"{title}: {body}" if body else title
    sequences = []
    if kind in ("osc9", "both"):
        sequences.append(f"{ESC}]9;{' ' + text if text[:1].isdigit() else text}{BEL}")  # 9;4 etc. are commands
    if kind in ("osc777", "both"):
        sequences.append(f"{ESC}]777;notify;{title};{body}{BEL}")
    if env.get("TMUX"):
        sequences = [_tmux(s) for s in sequences]
    return "".join(sequences) + BEL
