"""`mihd runs wait ID [ID ...] [--timeout D]`: block until the runs end, so a shell script or a Slurm
dependency chain can follow a launched grid.

One line per run as it ends (`ID  done  LABEL  4m02s  ARI 0.612`, or its reason); exit 0 when every run is
done, 1 when one failed, was killed, lost or is corrupt, 124 when --timeout passed first (the still active
ones named on stderr). References are those of the other runs commands: an id, a prefix, a name, GRID/N.
"""

from __future__ import annotations

import sys
import time

from .common import one_line

POLL_S = 1.0
TIMED_OUT = 124  # as timeout(1) says it


def add_wait(rsub) -> None:
    from .common import add_root

    p = rsub.add_parser("wait", help="block until runs end; exit 0 all done, 1 one failed or was killed, 124 timeout")
    p.add_argument("ids", nargs="+", metavar="ID", help="runs (id, id prefix, name) or GRID/N cells")
    p.add_argument("--timeout", metavar="DURATION", help="give up after this long (90s, 5m, 2h): exit 124")
    add_root(p)


def _state(w, ref: tuple[str, int | None]):
    """(status, label, elapsed, ARI, why) of a run or grid cell, refreshed."""
    from ..errors import MihdError

    view = w.view(ref[0])
    if ref[1] is None:
        ended = view.status not in ("queued", "running", "orphaned") and not (
            view.status == "corrupt" and w.may_still_run(view))
        return ended, view.status, view.label, view.elapsed, view.ari, view.error or view.reason
    cell = next((c for c in view.cells if c.index == ref[1]), None)
    if cell is None:
        raise MihdError(f"run {ref[0]}/{ref[1]}: no such cell (GRID/N names cell N of a fanned-out grid)")
    ended = cell.status not in ("queued", "running", "orphaned")
    return ended, cell.status, cell.label, cell.elapsed, cell.ari, cell.error or cell.reason


def cmd_wait(args) -> int:
    from ..present import fmt_duration, fmt_score
    from ..runs.durations import parse_duration
    from ..runs.ids import split_cell
    from .watching import watching

    deadline = None if args.timeout is None else time.monotonic() + parse_duration(args.timeout, "--timeout")
    refs = {ref: split_cell(ref) for ref in dict.fromkeys(args.ids)}
    worst = 0
    with watching(args.root) as w:
        refs = {ref: (w.resolve(run), cell) for ref, (run, cell) in refs.items()}  # a bad one: exit 2 first
        while refs:
            for ref, key in list(refs.items()):
                ended, status, label, elapsed, ari, why = _state(w, key)
                if not ended:
                    continue
                del refs[ref]
                name = key[0] if key[1] is None else f"{key[0]}/{key[1]}"
                what = f"ARI {fmt_score(ari)}" if status == "done" else (why or "")
                print(one_line(f"{name}  {status}  {label}  {fmt_duration(elapsed)}  {what}".rstrip()), flush=True)
                worst = max(worst, 0 if status == "done" else 1)
            if refs and deadline is not None and time.monotonic() >= deadline:
                print(f"mihd: runs wait: --timeout {args.timeout} passed; still active: {', '.join(refs)}",
                      file=sys.stderr)
                return TIMED_OUT
            if refs:
                time.sleep(POLL_S)
    return worst
