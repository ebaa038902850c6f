"""Small text formatters shared by the widgets (presentation only)."""

from __future__ import annotations

from mihd.present import fmt_duration
from mihd.runs.ids import short_id  # noqa: F401  (the widgets show ids as the CLI takes them)

BLOCKS = " ▏▎▍▌▋▊▉█"


def text_bar(fraction: float | None, width: int = 10) -> str:
    """A bar in eighth blocks, e.g. `██████▍   `; blanks when unknown."""
    if fraction is None:
        return " " * width
    eighths = int(round(min(max(fraction, 0.0), 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (BLOCKS[part] if part else "")).ljust(width)


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def fmt_eta(seconds: float | None, confidence: str, fmt=fmt_duration) -> str:
    """An active run's ETA, with a `?` when little stands behind it; `?` alone when nothing is measured yet."""
    if seconds is None:
        return "?"
    return fmt(seconds) + ("?" if confidence in ("unknown", "low") else "")


def fmt_minutes(seconds: float | None) -> str:
    """A live row's time: seconds under a minute, then whole minutes (`12m`, `1h02m`), so that the row changes
    once a minute, not at each refresh (a changed row is drawn again: most of the dashboard's idle CPU)."""
    if seconds is None or seconds < 60:
        return fmt_duration(seconds)
    return f"{int(seconds) // 60}m" if seconds < 3600 else fmt_duration(seconds)


def fit_label(label: str, width: int, gene: str | None = None, cluster: str | None = None) -> str:
    """A cell label (`pca+resnet50 staig_fusion gmm`) made to fit `width`, the fusion kept whole: it is what tells
    two runs of one column apart. Too long, it leaves out first the clusterer and then the gene where they are the
    ones the header says (`resnet50 staig_fusion`), then cuts the encoders (`texture/… staig_fusion`). Labels of
    another form are cut at the end."""
    words = label.split(" ")
    if len(words) == 3:
        enc, fusion, clus = words
        rest = f" {fusion} {clus}"
        if len(enc + rest) > width and clus == cluster:
            rest = f" {fusion}"
        if len(enc + rest) > width and gene and enc.startswith(gene + "+"):
            enc = enc[len(gene) + 1:]
        room = width - len(rest) - 1  # what the encoders may keep beside an ellipsis
        if len(enc + rest) > width and room >= 3:
            return enc[:room] + "…" + rest
        label = enc + rest
    return label if len(label) <= width else label[:width - 1] + "…"
