"""How numbers read on screen and in `mihd` listings: durations, ages, byte counts (presentation only).

Parsing what a researcher types (`parse_duration`) stays with the other parsing, in mihd.runs.durations.
"""

from __future__ import annotations


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


RANDOM_MARK = "*"  # beside a score made with random-init weights, wherever it is shown


def fmt_score(x: float | None, random_init: bool = False, digits: int = 3) -> str:
    """`0.767`, `0.767*` when an input had random-init weights (a smoke test, not a result); `-` when none."""
    return "-" if x is None else f"{x:.{digits}f}" + (RANDOM_MARK if random_init else "")


def fmt_bytes(n: int | float | None) -> str:
    """`312M`, `1.2G`; `-` when unknown."""
    if n is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}" if unit == "G" else f"{n / size:.0f}{unit}"
    return f"{n:.0f}B"


def slurm_clock(seconds: float) -> str:
    """A duration as Slurm writes a time limit: `2:00:00`, `1-02:00:00`."""
    s = int(round(max(seconds, 0)))
    days, s = divmod(s, 86400)
    clock = f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}-{clock:0>8}" if days else clock
