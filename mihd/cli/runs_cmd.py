"""`mihd runs ls|show|logs|kill|rm|reindex|wait`: run control from the shell.

Run-control modules are imported inside the handlers, so building the parser costs nothing. What the
registry healed or rebuilt is said on stderr, one line each; a run dir with a bad file is one `corrupt`
line, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time

from ..present import RANDOM_MARK, fmt_score
from ..safe_text import safe_text
from .common import one_line as _text  # a name or file's content on one line (a newline in --name escaped)
from .watching import watching

RANDOM_NOTE = f"{RANDOM_MARK} made with random-init weights: a smoke test, not a result"


def register(sub) -> None:
    from .common import add_root
    from .runs_wait import add_wait

    runs = sub.add_parser("runs", help="list, inspect, follow and stop runs")
    rsub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    ls = rsub.add_parser("ls", help="runs with status, elapsed, ETA, progress, CPU, RSS, GPU, overrun")
    ls.add_argument("--json", action="store_true", help="one JSON list, every field")
    ls.add_argument("--all", action="store_true", help="every run, not just active and the latest finished")
    ls.add_argument("--overrun-factor", type=float, help="overrun when elapsed > factor x expected (1.5)")
    show = rsub.add_parser("show", help="everything about one run (id, id prefix or name)")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    logs = rsub.add_parser("logs", help="print a run's log")
    logs.add_argument("id", help="a run, or GRID/N: cell N of a grid launched with --parallel or on Slurm")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the run ends")
    kill = rsub.add_parser("kill", help="stop a run: its whole process tree, TERM then KILL after --grace")
    kill.add_argument("id", help="a run, or GRID/N: only cell N of a grid launched with --parallel or on Slurm")
    kill.add_argument("--signal", default="TERM", type=str.upper, choices=("TERM", "INT", "KILL"))
    kill.add_argument("--grace", default="10s", help="wait this long before KILL (default 10s)")
    rm = rsub.add_parser("rm", help="remove finished runs: their run dirs and their rows (never an active run)")
    rm.add_argument("ids", nargs="+", metavar="ID")
    rm.add_argument("--force", action="store_true", help="also remove runs another user made")
    rsub.add_parser("reindex", help="rebuild this host's registry index from the run dirs")
    add_wait(rsub)
    for q in (ls, show, logs, kill, rm):
        add_root(q)
    add_root(rsub.choices["reindex"])
    runs.set_defaults(handler=cmd_runs)


def cmd_runs(args) -> int:
    from .runs_wait import cmd_wait

    return {"ls": _ls, "show": _show, "logs": _logs, "kill": _kill, "rm": _rm,
            "reindex": _reindex, "wait": cmd_wait}[args.runs_command](args)


def _row(v) -> list[str]:
    from ..present import fmt_bytes, fmt_duration

    prog = "-" if v.progress is None else f"{100 * v.progress:.0f}%"
    eta = "-" if v.eta_s is None else f"{fmt_duration(v.eta_s)}~{v.eta_confidence}"
    score = fmt_score(v.ari, v.random_init)
    status = v.status + ("!" if v.overrun and v.active else " late" if v.late and v.active else "")
    status = f"unknown ({v.reason})" if v.status == "unknown" else status
    elapsed = fmt_duration(v.elapsed) if v.status != "queued" else f"q {fmt_duration(v.queued_s)}"
    cpu = "-" if v.cpu_percent is None else f"{v.cpu_percent:.0f}%"
    return [v.id, _text(v.label)[:60], status, elapsed, eta, prog, cpu, fmt_bytes(v.rss), fmt_bytes(v.gpu_mem), score]


def _ls(args) -> int:
    with watching(args.root, factor=args.overrun_factor) as w:
        if args.json:
            rows = w.refresh_json(all=args.all)  # one run a line: grep-able, quick to write
            print("[\n" + ",\n".join(rows) + "\n]" if rows else "[]")
            return 0
        views = w.refresh(all=args.all)
    header = ["ID", "CELL", "STATUS", "ELAPSED", "ETA", "PROG", "CPU", "RSS", "GPU", "ARI"]
    table = [header] + [_row(v) for v in views]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if any(v.overrun and v.active for v in views):
        print("! overrunning: past its expected time (mihd runs kill ID to stop it)")
    for v in views:
        if v.late and v.active and not v.overrun:
            print(f"late {v.id}: {v.late} (mihd runs kill {v.id} to stop it)")
    if any(v.random_init for v in views):
        print(RANDOM_NOTE)
    for v in views:
        if v.status == "corrupt":
            print(f"{v.id}: corrupt: {_text(v.error)}")
        elif v.status == "unreadable":  # another member's files: `unreadable (owner X): <file>`
            print(f"{v.id}: {_text(v.error)}")
    return 0


def _fmt_usage(cpu_percent, rss, gpu_mem) -> str:
    from ..present import fmt_bytes

    return f"{'-' if cpu_percent is None else f'{cpu_percent:.0f}%'} / {fmt_bytes(rss)} / {fmt_bytes(gpu_mem)}"


def _show(args) -> int:
    from pathlib import Path

    from ..rundir import read_events, read_spec
    from ..present import fmt_duration
    from ..runs.fanout_status import by_slice, cells_summary
    from ..runs.notify_event import told, told_line
    from ..runs.usage import read_usage

    with watching(args.root) as w:
        v = w.view(args.id)
    d = v.to_dict()
    argv = (read_spec(v.run_dir) or {}).get("argv")
    d["argv"] = argv if isinstance(argv, list) else None
    d["notified"] = told(read_events(Path(v.run_dir))[0])  # what its alerts were told, sent or why not
    if args.json:
        json.dump(d, sys.stdout, indent=1, default=str)
        print()
        return 0
    peak = (read_usage(Path(v.run_dir)) or {}).get("peak", {})
    stamp = lambda t: "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))  # noqa: E731
    lines = [("id", v.id), ("name", v.name or "-"), ("cell", v.label), ("status", v.status),
             ("backend", v.backend), ("run dir", v.run_dir), ("command", " ".join(map(str, d["argv"] or []))),
             ("created", stamp(v.created)), ("started", stamp(v.started)), ("ended", stamp(v.ended)),
             ("queued", fmt_duration(v.queued_s)), ("running", fmt_duration(v.elapsed)),
             ("expected", f"{fmt_duration(v.expected_s)} ({v.expected_source or 'no history'})"),
             ("eta", f"{fmt_duration(v.eta_s)} ({v.eta_confidence})"),
             ("progress", "-" if v.progress is None else f"{100 * v.progress:.0f}%"
              + (f" {v.stage} {v.stage_done}/{v.stage_total}" if v.stage else "")),
             ("overrun", "yes" if v.overrun else "no"),
             *([("late", v.late)] if v.late else []),
             ("cpu / rss / gpu", _fmt_usage(v.cpu_percent, v.rss, v.gpu_mem)),
             ("peak", _fmt_usage(peak.get("cpu_percent"), peak.get("rss"), peak.get("gpu_mem"))
              + ("" if peak else " (no usage.json)")),
             ("pid / job", f"{v.pid or '-'} / {v.job_id or '-'}"),
             ("exit", f"code {v.exit_code}" if v.exit_code is not None else (f"signal {v.exit_signal}"
                                                                            if v.exit_signal else "-"))]
    if v.killed_at:
        lines.append(("killed", f"{stamp(v.killed_at)} with {v.kill_signal} by {v.killed_by}"))
    if v.error:
        lines.append(("error", v.error))
    if v.reason:
        lines.append(("note", v.reason))
    for k, val in lines:
        print(f"{k:>16}  {_text(val)}")
    for s in [] if v.cells else v.scores:
        ari, nmi = fmt_score(s["ari"], s["random_init"]), fmt_score(s["nmi"], s["random_init"])
        print(f"{'':>16}  {s['label']}: ARI {ari}  NMI {nmi}")
    if v.cells:  # a fanned-out grid: each cell's own state (`mihd runs kill ID/N` stops one); a study by slice
        print(f"{'cells':>16}  {cells_summary(v.cells)}")
        groups = by_slice(v.cells)
        for slice_id, summary, cells in groups:
            if len(groups) > 1:
                print(f"{'slice':>16}  {_text(slice_id)}: {summary}")
            for c in cells:
                print(f"{'cell ' + str(c.index):>16}  {_cell_line(c)}")
    untold = f"- (killed by {v.killed_by}: a run you end yourself tells no one)" if v.killed_by else "-"
    for i, line in enumerate([told_line(o) for o in d["notified"]] or [untold]):  # each hook's outcome, or why none
        print(f"{'' if i else 'notified':>16}  {_text(line)}")
    if v.random_init or any(s["random_init"] for s in v.scores) or any(c.random_init for c in v.cells):
        print(RANDOM_NOTE)
    return 0


def _cell_line(c) -> str:
    from ..present import fmt_duration

    if c.status == "done":
        what = f"ARI {fmt_score(c.ari, c.random_init)}  {fmt_duration(c.elapsed)}"
    elif c.status in ("running", "orphaned"):
        prog = "" if c.progress is None else f" {100 * c.progress:.0f}%"
        what = f"{fmt_duration(c.elapsed)}{prog}" + (" overrunning" if c.overrun else f" {c.late}" if c.late else "")
    else:
        what = c.reason or c.error or ""
    job = f"  [job {c.job_id}]" if c.job_id else ""
    return _text(f"{c.label}  {c.status}  {what}{job}")


def _logs(args) -> int:
    from pathlib import Path

    from ..errors import MihdError
    from ..rundir import EXIT, LOG
    from ..runs.fanout import cell_dir
    from ..runs.ids import split_cell

    run_id, cell = split_cell(args.id)  # GRID/3: cell 3 of a fanned-out grid
    with watching(args.root) as w:
        v = w.view(run_id)
    if v.status == "unreadable":  # another member's run: `unreadable (owner X)`, not a traceback
        raise MihdError(f"run {v.id}: {v.error}")
    run_dir = Path(v.run_dir)
    if cell is not None:
        run_dir = cell_dir(run_dir, cell)
    if cell is not None and not run_dir.is_dir():
        raise MihdError(f"run {args.id!r}: no such cell (ID/N names cell N of a fanned-out grid)")
    tty = sys.stdout.isatty()
    offset, rest = 0, b""
    while True:
        before = offset
        offset, rest = _print_log(run_dir / LOG, offset, rest, tty)
        if not args.follow or ((run_dir / EXIT).exists() and offset == before):
            if rest:
                sys.stdout.write(safe_text(rest.decode(errors="replace"), colour=True))
            sys.stdout.flush()
            return 0
        time.sleep(0.3)


LOG_CHUNK = 1 << 16  # bytes read at a time: a 200 MB run.log is never held whole


def _print_log(path, offset: int, rest: bytes, tty: bool) -> tuple[int, bytes]:
    """Print run.log past `offset`, a chunk at a time: to a terminal whole lines through safe_text (a run's
    output never drives it; colours kept), elsewhere (a pipe, a file) the bytes as written. Returns the new
    offset and the end of a line not finished yet (printed once it ends, or once it passes a chunk)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return offset, rest
    with fh:
        fh.seek(offset)
        while chunk := fh.read(LOG_CHUNK):
            offset += len(chunk)
            if not tty:
                sys.stdout.flush()
                sys.stdout.buffer.write(chunk)
                continue
            rest += chunk
            cut = rest.rfind(b"\n") + 1 or (len(rest) if len(rest) > LOG_CHUNK else 0)
            sys.stdout.write(safe_text(rest[:cut].decode(errors="replace"), colour=True))
            rest = rest[cut:]
    sys.stdout.flush()
    return offset, rest


def _kill(args) -> int:
    from ..runs.durations import parse_duration
    from ..runs.kill import kill_run

    grace = parse_duration(args.grace, "--grace")
    with watching(args.root) as w:
        out = kill_run(args.root, args.id, signal=args.signal, grace=grace, watcher=w)
    extra = ", then KILL to what was left" if out.get("escalated") else ""
    left = f" ({', '.join(out['left'])})" if out.get("left") else ""
    print(f"{out['id']}: sent {out['signal']}{extra}; status {out['status']}, {out['survivors']} processes left{left}")
    if out.get("outside"):
        print(f"{out['id']}: found outside the run's session and signalled too: {', '.join(out['outside'])}")
    return 0 if not out["survivors"] else 1


def _rm(args) -> int:
    """One line per run: removed, or why not (the others are still removed); exit 2 when any was refused."""
    from ..errors import MihdError
    from ..runs.remove import remove_run

    refused = 0
    with watching(args.root) as w:
        for ref in args.ids:
            try:
                v = remove_run(args.root, ref, watcher=w, force=args.force)
            except MihdError as exc:
                print(f"mihd: error: {_text(exc)}", file=sys.stderr)
                refused += 1
                continue
            print(f"removed {v.id}  {_text(v.label)}  ({v.status})")
    return 2 if refused else 0


def _reindex(args) -> int:
    with watching(args.root) as w:
        n = w.registry.reindex()
        views = w.refresh(all=True)  # process checks: a run gone without exit.json ends by its own files, or lost
    corrupt = sum(v.status == "corrupt" for v in views)
    print(f"indexed {n} run dirs ({sum(v.active for v in views)} active"
          + (f", {corrupt} corrupt: see mihd runs ls --all)" if corrupt else ")"))
    return 0
