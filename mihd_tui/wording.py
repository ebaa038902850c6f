"""How the grid's states and the expected duration read on screen (mihd.grid decides them)."""

from __future__ import annotations


from mihd.fusion.baselines import INSTALL
from mihd.grid import DONE, FAILED, KILLED, LATE, LOST, NA, NEVER, NO_WEIGHTS, ORPHANED, OVERRUN, QUEUED, READY, \
    RUNNING, \
    CORRUPT, IN_GRIDS, CellState, Scored
from mihd.present import RANDOM_MARK, fmt_duration, fmt_score
from mihd.runs.eta import Expected

from .text import plain

# what each state means, for the status line under the grid
DESCRIBE = {"never": "never run (computes its inputs first)", "ready": "inputs cached, can run now",
            "no weights": "cannot run here", "queued": "queued", "running": "running",
            "overrun": "running past its expected time", "late": "late", "orphaned": "orphaned: supervisor gone, still running",
            "done": "done", "failed": "failed", "killed": "killed", "lost": "lost (process gone without an exit)",
            "corrupt": "corrupt run dir", "n/a": "needs a vision embedding"}
# the latest attempt beside a result (one glyph), and alone (a word)
MARK = {OVERRUN: "!", LATE: "»", ORPHANED: "◌", FAILED: "✗", KILLED: "✗", LOST: "?", CORRUPT: "✗"}
WORD = {NEVER: "·", READY: "ready", NO_WEIGHTS: "⊘", NA: "—"}
QUEUED_MARK = "⧗"  # beside the last score while a new run of the cell waits to start
CELL_WIDTH = 8
LABELLED_ONLY = "labelled spots only"  # a score of a run with --drop-unlabelled: another measure than every spot's


def score_text(cs: CellState) -> str:
    """The latest result: `0.767`, `0.767*` (random-init weights), `done` (no truth labels), or ''."""
    if cs.scored_by is None:
        return ""
    if cs.slices:  # all slices: the mean over the slices that have a score, and how many
        return f"{cs.ari:.2f} n{len(cs.slices)}"
    return "done" if cs.ari is None else fmt_score(cs.ari, cs.random_init)


def cell_text(cs: CellState) -> str:
    """Short (<= CELL_WIDTH columns) text for a grid cell: the latest result beside the latest attempt's
    state when they differ (`42% .77` running, `0.767 ✗` killed or failed since), else one of them."""
    score = score_text(cs)
    if cs.state in (RUNNING, LATE, OVERRUN, ORPHANED):
        done = f"{len(cs.slices)}/{cs.cohort}" if cs.cohort else f"{100 * (cs.progress or 0):.0f}%"  # all slices: scored
        pct = done + (MARK[cs.state] if cs.state != RUNNING else "")
        if cs.ari is None:
            return pct
        return f"{pct} {fmt_score(cs.ari, cs.random_init, 2)}".replace(" 0.", " .")
    if cs.state == DONE:
        return score or "done"
    if cs.state == QUEUED:  # the last score stays in sight, marked as waiting; the line under the grid says whose
        return f"{score} {QUEUED_MARK}" if score else "queued"
    if score:
        return f"{score} {MARK.get(cs.state, '')}".strip()
    return WORD.get(cs.state, cs.state)


def describe_cell(cs: CellState) -> str:
    """The status line's words for a cell: the attempt (with its % or reason), then the latest result."""
    if cs.state in (RUNNING, LATE, OVERRUN, ORPHANED):
        what = f"{DESCRIBE[cs.state]}, " + (f"{len(cs.slices)} of {cs.cohort} slices scored" if cs.cohort
                                             else f"{100 * (cs.progress or 0):.0f}%")
    elif cs.state == DONE and cs.slices:
        sd = f" ± {cs.ari_sd:.3f}" if cs.ari_sd is not None else ""
        n = len(cs.slices)
        return f"mean ARI {cs.ari:.3f}{sd} over {n} slice{'s' if n != 1 else ''}" + measure_note(cs)
    elif cs.state == DONE:
        sd = f" ± {cs.ari_sd:.3f} over seeds" if cs.ari_sd is not None else ""
        what = "no truth labels" if cs.ari is None else f"ARI {cs.ari:.3f}{sd}, NMI {cs.nmi:.3f}"
        what += " [b $warning](random-init weights)[/]" if cs.random_init else ""
        return what + measure_note(cs)
    elif cs.state == NO_WEIGHTS:
        return plain(cannot_run(cs.reason))
    else:
        what = DESCRIBE.get(cs.state, cs.state)
    if cs.reason:
        what += f": {plain(cs.reason)}"
    if cs.scored_by is not None and cs.ari is not None:
        what += f" · last ARI {fmt_score(cs.ari, cs.random_init)}" + measure_note(cs)
    return what


def measure_note(score: CellState | Scored) -> str:
    """` (spatially refined, labelled spots only)`: how a score was made, where not the plain way (labels refined
    by --refine; only spots with a truth label counted)."""
    said = [what for what, on in (("spatially refined", score.refined), (LABELLED_ONLY, score.labelled_only)) if on]
    return f" ({', '.join(said)})" if said else ""



def history_text(cs: CellState, sep: str = " · ") -> str:
    """The cell's scores over its runs, oldest first, as a sparkline and the last few numbers (`*`: made
    with random-init weights, said in words when any is); scores of labelled spots only (`--drop-unlabelled`)
    and of every spot are two measures, refined (`--refine`) and plain runs two methods: each has its own
    sparkline, joined by `sep`. On all slices, each slice's score."""
    if cs.slices:
        return "per slice: " + " · ".join(f"{plain(s)} {a:.3f}" for s, a in cs.slices)
    ways = [(spots, refined) for spots in (False, True) for refined in (False, True)]
    groups = [g for g in ([s for s in cs.history if (s.labelled_only, s.refined) == way] for way in ways) if g]
    if len(groups) == 1 and len(groups[0]) < 2:
        return ""
    spots, refine = (len({getattr(s, f) for s in cs.history}) > 1 for f in ("labelled_only", "refined"))
    return sep.join(_history_line(g, spots, refine) for g in groups)


def _history_line(scores: list, spots: bool, refine: bool) -> str:
    """One measure's history: `ARI over 3 [refined] runs [on ...] ▃▅▆ 0.41 0.52 0.60` (`spots`, `refine`: the
    cell's history holds both measures, both methods: this line says which it is)."""
    ticks = "▁▂▃▄▅▆▇█"
    spark = "".join(ticks[min(int(s.ari * len(ticks)), len(ticks) - 1)] if s.ari > 0 else ticks[0]
                    for s in scores[-12:])
    last = " ".join(fmt_score(s.ari, s.random_init, 2) for s in scores[-4:])
    note = f" ({RANDOM_MARK} random init)" if any(s.random_init for s in scores) else ""
    on = f" on {LABELLED_ONLY}" if scores[0].labelled_only else " on every spot" if spots else ""
    how = (" refined" if scores[0].refined else " plain") if refine else ""
    n = len(scores)
    return f"ARI over {n}{how} run{'s' if n != 1 else ''}{on} {spark} {last}{note}"


def describe_expected(exp: Expected) -> str:
    """`~42s (history of 3 runs)`: how the launch dialog prefills and explains the expected duration."""
    if exp.seconds is None:
        if exp.source == IN_GRIDS:
            return f"scored {exp.n}x inside grids, never alone: no time for a run of it alone yet"
        return "no history yet"
    return f"~{fmt_duration(exp.seconds)} ({exp.source}" + (f", {exp.n} run{'s' * (exp.n != 1)})" if exp.n else ")")


def cannot_run(reason: str | None) -> str:
    """Why a `⊘` cell cannot run: a baseline's missing package with its install line, else missing weights."""
    why = reason or "no weights"
    return why if INSTALL in why else f"{why}: nothing cached, cannot run here"
