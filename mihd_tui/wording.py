"""How the grid's states and the expected duration read on screen (mihd.grid decides them)."""

from __future__ import annotations

from mihd.grid import DONE, NA, NEVER, OVERRUN, READY, RUNNING, CellState
from mihd.present import fmt_duration
from mihd.runs.eta import Expected

# what each state means, for the line under the grid
DESCRIBE = {"never": "never run", "ready": "inputs cached, can run now", "queued": "queued",
            "running": "running", "overrun": "running past its expected time", "failed": "failed",
            "killed": "killed", "lost": "lost (process gone without an exit)", "n/a": "needs a vision embedding"}


def cell_text(cs: CellState) -> str:
    """Short (<= 7 columns) text for a grid cell."""
    if cs.state == DONE:
        return "done" if cs.ari is None else f"{cs.ari:.3f}" + ("*" if cs.random_init else "")
    if cs.state in (RUNNING, OVERRUN):
        pct = f"{100 * (cs.progress or 0):.0f}%"
        return pct + (" !" if cs.state == OVERRUN else "")
    return {NEVER: "·", READY: "ready", NA: "—"}.get(cs.state, cs.state)


def describe_expected(exp: Expected) -> str:
    """`~42s (history of 3 runs)`: how the launch dialog prefills and explains the expected duration."""
    if exp.seconds is None:
        return "no history yet"
    return f"~{fmt_duration(exp.seconds)} ({exp.source}" + (f", {exp.n} run{'s' * (exp.n != 1)})" if exp.n else ")")
