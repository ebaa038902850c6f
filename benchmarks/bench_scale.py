"""The tool at study scale: a workspace of N finished runs (default 10,000, of which 3,000 studies of 4-20 cells
and one of 168), each figure printed beside its goal.

- `mihd runs ls --json --all`, warm (goal <= 1 s) and with no host index, i.e. a cold rebuild (goal <= 30 s; a
  new workspace's first listing, which also writes each ended grid's parts.json, is printed before it)
- `mihd results --across-slices` (goal <= 2 s; plain `mihd results` where this mihd has no --across-slices)
- the dashboard's refresh with nothing changed: its time and how many run files it opened (work that should
  not grow with the number of runs: none, counted with an audit hook on "open")
- the dashboard, in its own process in a pseudo-terminal: first frame (goal <= 1.5 s), idle CPU with 20 live runs
  at its default refresh and at --interval 2 (goal <= 1 % of one core), RSS (goal <= 200 MB), a key press
  answered: a cursor key on the grid until the redrawn frame reaches the terminal, 20 runs live (median, goal
  <= 100 ms), and keys beside 4 busy processes (bench_tui.keys_under_load: goal <= 1 s at worst)

The workspace is made with the real writers: real `mihd run`/`mihd grid` runs on the demo slice and on
copies of it registered under other slice names (so results span slices) and one real small study (4 cells
over 2 slices, fanned out), then copies of those run dirs under new ids and times (spec.json, proc.json,
events and exit.json edited as the writers would write them; a study's cells each their own, its plan,
fanout.json and merged result listing them; other files hard-linked). The live runs are real supervised processes launched through
the launcher. `--workspace DIR` keeps the workspace (and reuses it when it is already there).

python benchmarks/bench_scale.py [--runs 10000] [--grids 3000] [--big 168] [--idle 30] [--live 20] [--workspace DIR]
                                 [--only cold warm results refresh dashboard]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from bench_tui import first_frame, idle, key_answers, show_keys_under_load  # noqa: E402
from mihd.rundir import write_result  # noqa: E402
from mihd.runs.launch import new_run_id  # noqa: E402
from mihd.runs.parts_file import PARTS_FILE  # noqa: E402
from runs_helpers import drop_index, kill_all, launch_fake  # noqa: E402
from tui_helpers import no_gpu  # noqa: E402

MIHD = [sys.executable, "-m", "mihd"]
SLICES = ("demo", "s2", "s3")
DAY = 86400.0
PARTS = ("cold", "warm", "results", "refresh", "dashboard")  # what --only may name, measured in this order


def mihd(*args: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*MIHD, *args, "--root", str(root)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def checked(*args: str, root: Path) -> str:
    out = mihd(*args, root=root)
    if out.returncode:
        raise SystemExit(f"mihd {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return out.stdout


def real_runs(root: Path) -> tuple[list[Path], Path]:
    """A few real cheap runs: a one-cell run and a three-cell grid (three seeds) per slice, and one real small
    study (a fanned-out grid of 4 cells over 2 slices); returns (the plain runs, the study)."""
    checked("run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat", "--cluster", "kmeans",
            root=root)
    for name in SLICES[1:]:
        checked("slices", "add", name, str(root / "demo" / "demo.h5ad"), root=root)
        checked("run", name, "--gene", "pca", "--vision", "texture", "--fusion", "concat", "--cluster", "kmeans",
                root=root)
    for name in SLICES:
        checked("grid", name, "--gene", "pca", "--vision", "texture", "--fusion", "mean,gene_only,vision_only",
                "--cluster", "kmeans", "--seeds", "3", root=root)
    plain = sorted(p for p in (root / "runs").iterdir() if p.is_dir())
    checked("grid", ",".join(SLICES[:2]), "--gene", "pca", "--vision", "texture", "--fusion", "mean,concat",
            "--cluster", "kmeans", root=root)
    study = next(p for p in (root / "runs").iterdir() if p.is_dir() and p not in plain)
    return plain, study


def shifted_events(text: str, dt: float) -> str:
    lines = []
    for line in text.splitlines():
        event = json.loads(line)
        event["t"] = round(event["t"] + dt, 3)
        lines.append(json.dumps(event))
    return "".join(line + "\n" for line in lines)


def copy_part(template: Path, dest: Path, dt: float, edit=None) -> None:
    """One run dir's files again with its times moved by `dt` (spec/proc/exit/events rewritten, `edit(spec)`
    applied to its spec; every other file hard-linked, as read-only copies would be)."""
    dest.mkdir(parents=True)
    for f in template.iterdir():
        if f.is_dir():
            (dest / f.name).mkdir()
            for g in f.iterdir():
                if g.is_file():  # a grid's parts are copied one by one (copy_study)
                    os.link(g, dest / f.name / g.name)
        elif f.name == "spec.json":
            spec = json.loads(f.read_text())
            spec["created"] = round(spec["created"] + dt, 3)
            if edit:
                edit(spec)
            (dest / f.name).write_text(json.dumps(spec, indent=1, sort_keys=True))
        elif f.name in ("proc.json", "exit.json"):
            data = json.loads(f.read_text())
            for field in ("started", "ended", "create_time", "child_create_time"):
                if isinstance(data.get(field), (int, float)):
                    data[field] = round(data[field] + dt, 3)
            (dest / f.name).write_text(json.dumps(data, indent=1, sort_keys=True))
        elif f.name == "events.jsonl":
            (dest / f.name).write_text(shifted_events(f.read_text(), dt))
        else:
            os.link(f, dest / f.name)


def copy_run(template: Path, runs: Path, when: float) -> None:
    """The template run dir again as if it had been made at `when`: a new id, its times moved."""
    dt = when - json.loads((template / "spec.json").read_text())["created"]
    run_id = new_run_id(when)
    copy_part(template, runs / run_id, dt, lambda spec: spec.update(id=run_id))


GENES, VARIANTS, CLUSTERS = ("pca", "mlp", "scgpt"), ("standard", "freq", "staig_strict"), ("kmeans", "gmm", "leiden")
FUSIONS = ("gene_only", "gene_smooth", "vision_only", "concat", "mean", "attention", "staig_fusion")


def study_cell(cells: list[dict], i: int) -> dict:
    """Cell i of a copied study: on the slice of the template's cell i mod its size, with encoders, fusion and
    clusterer of its own (a plan lists each cell once; up to 189 cells)."""
    combo = i
    return {**cells[i % len(cells)], "fusion": FUSIONS[combo % 7], "cluster": CLUSTERS[combo // 7 % 3],
            "variant": VARIANTS[combo // 21 % 3], "gene": GENES[combo // 63 % 3]}


def copy_study(template: Path, runs: Path, when: float, n: int) -> None:
    """The template study (a fanned-out grid) again with `n` cells (cell i a copy of the template's cell i mod
    its size, the plan, fanout.json and merged result listing them so), made at `when`."""
    dt = when - json.loads((template / "spec.json").read_text())["created"]
    run_id = new_run_id(when)
    dest = runs / run_id
    fan = json.loads((template / "fanout.json").read_text())
    k = len(fan["cells"])

    def grid_spec(spec: dict) -> None:
        cells = spec["plan"]["cells"]
        spec.update(id=run_id, cached=[spec["cached"][i % k] for i in range(n)])
        spec["plan"]["cells"] = [study_cell(cells, i) for i in range(n)]

    copy_part(template, dest, dt, grid_spec)
    for part in ("cells", "extract", "fused"):
        shutil.rmtree(dest / part, ignore_errors=True)
    for key in fan["extract"]:
        copy_part(template / "extract" / key, dest / "extract" / key, dt)
        fan["extract"][key]["cells"] = [i for i in range(n) if key in fan["cells"][i % k]["needs"]]
    cells = json.loads((template / "spec.json").read_text())["plan"]["cells"]

    def cell_spec(spec: dict, i: int) -> None:
        spec.update(id=f"{run_id}/{i}")
        spec["plan"]["cells"] = [study_cell(cells, i)]

    for i in range(n):
        copy_part(template / "cells" / str(i % k), dest / "cells" / str(i), dt, lambda spec, i=i: cell_spec(spec, i))
    (dest / "fused").mkdir()
    for i in range(n):
        os.link(dest / "cells" / str(i) / "fused" / "0.npy", dest / "fused" / f"{i}.npy")
    fan.update(cells=[fan["cells"][i % k] for i in range(n)], order=list(range(n)))
    os.unlink(dest / "fanout.json")  # a link to the template's
    (dest / "fanout.json").write_text(json.dumps(fan, indent=1, sort_keys=True))
    result = json.loads((template / "result.json").read_text())
    result["cells"] = [result["cells"][i % k] for i in range(n)]
    for name in ("result.json", "scores.json"):  # links to the template's
        (dest / name).unlink(missing_ok=True)
    write_result(dest, result)


def make_workspace(root: Path, n: int, grids: int, big: int) -> None:
    """`n` run dirs: `grids` studies of 4 to 20 cells, one of `big` cells, the rest plain runs and grids."""
    import random

    t = time.perf_counter()
    plain, study = real_runs(root)
    print(f"workspace: {len(plain) + 1} real runs over slices {', '.join(SLICES)} in {time.perf_counter() - t:.0f} s",
          flush=True)
    t, start, rng = time.perf_counter(), time.time() - 30 * DAY, random.Random(0)
    made = len(plain) + 1
    kinds = ["study"] * grids + ["big"] * (1 if big else 0) + ["plain"] * max(n - made - grids - (1 if big else 0), 0)
    rng.shuffle(kinds)
    for i, kind in enumerate(kinds):
        when = start + i * (29 * DAY / len(kinds))
        if kind == "plain":
            copy_run(plain[i % len(plain)], root / "runs", when)
        else:
            copy_study(study, root / "runs", when, big if kind == "big" else rng.randint(4, 20))
    print(f"workspace: {made + len(kinds)} run dirs, {grids} studies of 4-20 cells"
          + (f" and one of {big}" if big else "") + f" ({time.perf_counter() - t:.0f} s of copying)", flush=True)


def timed_cli(*args: str, root: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one `mihd` command (the CPU figure holds on a loaded machine)."""
    before, t = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    checked(*args, root=root)
    wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def seconds(timings: list[tuple[float, float]]) -> str:
    """The median run's wall time, with its CPU time."""
    wall, cpu = sorted(timings)[len(timings) // 2]
    return f"{wall:.2f} s ({cpu:.2f} s CPU)"


def show(what: str, value: str, goal: str) -> None:
    print(f"{what}: {value}  [goal {goal}]", flush=True)


class OpenCounter:
    """Counts the files opened under a folder while it is active, any way they are opened (an audit hook on
    "open": builtins.open, io.open as pathlib calls it, os.open)."""

    _active: list["OpenCounter"] = []
    _hooked = False

    def __init__(self, under: Path):
        self.under, self.paths = str(under), []

    @classmethod
    def _audit(cls, event: str, args) -> None:
        if event == "open" and cls._active and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            for counter in cls._active:
                if path.startswith(counter.under):
                    counter.paths.append(path)

    def __enter__(self):
        if not OpenCounter._hooked:
            sys.addaudithook(OpenCounter._audit)
            OpenCounter._hooked = True
        OpenCounter._active.append(self)
        return self

    def __exit__(self, *_):
        OpenCounter._active.remove(self)


def dashboard_refresh(root: Path) -> None:
    """The dashboard's refresh (its poller's snapshot) once started, with nothing changed: time and run files opened."""
    from mihd.grid import GridSpec
    from mihd_tui.poller import Poller

    poller = Poller(root, gpu=no_gpu())
    try:
        poller.snapshot(GridSpec("demo"))
        times = []
        for _ in range(5):
            with OpenCounter(root / "runs") as opened:
                t = time.perf_counter()
                poller.snapshot(GridSpec("demo"))
                times.append(time.perf_counter() - t)
        print(f"dashboard refresh with nothing changed (median of 5): {1000 * median(times):.0f} ms, "
              f"{len(opened.paths)} run files opened  [goal: grows with what changed, not with the number of runs]",
              flush=True)
    finally:
        poller.close()


def across_slices(root: Path) -> None:
    across = "--across-slices" in checked("results", "--help", root=root)
    if not across:
        print("note: this mihd has no `results --across-slices`; timing `mihd results` instead", flush=True)
    cmd = ("results", "--across-slices") if across else ("results",)
    took = [timed_cli(*cmd, root=root) for _ in range(3)]
    show(f"mihd {' '.join(cmd)} (median of 3)", seconds(took), "<= 2 s")


def dashboard(root: Path, args) -> None:
    """The dashboard in its own process: first frame, then idle CPU, RSS and keys with `args.live` live runs."""
    frame, data = first_frame(root)
    show("dashboard first frame", f"{frame:.2f} s (grid filled: {data:.2f} s)", "<= 1.5 s")
    ids = [launch_fake(root, "--seconds", "600") for _ in range(args.live)]
    started = time.time()
    try:
        out = idle(root, args.idle)
        time.sleep(max(0.0, 65 - (time.time() - started)))  # the live runs past their first minute
        settled = idle(root, args.idle)
        fast = idle(root, args.idle, interval=2)
        keys = key_answers(root, args.keys)
        show_keys_under_load(root)
    finally:
        kill_all(root, ids)
    show(f"dashboard idle CPU with {args.live} live runs in their first minute, over {args.idle:.0f} s (default 3 s "
         "refresh; their elapsed time ticks each refresh)",
         f"{out['cpu_percent']:.2f} % of one core", "<= 1 %")
    show(f"dashboard idle CPU with the {args.live} live runs past their first minute",
         f"{settled['cpu_percent']:.2f} % of one core (--interval 2: {fast['cpu_percent']:.2f} %)", "<= 1 %")
    show("dashboard RSS", f"{out['rss_mb']} MB (max {out['rss_max_mb']} MB)", "<= 200 MB")
    show(f"dashboard key press answered (grid cursor to redrawn frame in its terminal, {args.live} live runs; median)",
         f"{1000 * median(keys):.0f} ms (max {1000 * max(keys):.0f} ms over {len(keys)} keys)", "<= 100 ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000, help="finished run dirs in the workspace (default 10000)")
    ap.add_argument("--grids", type=int, default=3_000, help="of which studies of 4-20 cells (default 3000)")
    ap.add_argument("--big", type=int, default=168, help="and one study of this many cells (default 168; 0: none)")
    ap.add_argument("--idle", type=float, default=30, help="seconds of idle CPU measured (default 30)")
    ap.add_argument("--live", type=int, default=20, help="live runs while idle (default 20)")
    ap.add_argument("--keys", type=float, default=10, help="seconds of key presses (default 10)")
    ap.add_argument("--workspace", type=Path, help="keep the workspace here (reused when already made)")
    ap.add_argument("--only", nargs="+", choices=PARTS, help="measure only these (default: all)")
    args = ap.parse_args()
    tmp = None
    if args.workspace is None:
        tmp = tempfile.TemporaryDirectory()
        args.workspace = Path(tmp.name) / "ws"
    root = args.workspace
    try:
        if not (root / "runs").is_dir():
            root.mkdir(parents=True, exist_ok=True)
            make_workspace(root, args.runs, args.grids, args.big)
        n = sum(1 for _ in os.scandir(root / "runs"))
        print(f"{n} run dirs in {root}", flush=True)
        parts = set(args.only or PARTS)
        if "cold" in parts:
            if not any((d / PARTS_FILE).is_file() for d in (root / "runs").iterdir()):
                drop_index(root)
                show("mihd runs ls --json --all, the workspace's first listing (every cell read, parts.json written)",
                     seconds([timed_cli("runs", "ls", "--json", "--all", root=root)]), "-")
            drop_index(root)
            show("mihd runs ls --json --all, cold (no host index: a full rebuild)",
                 seconds([timed_cli("runs", "ls", "--json", "--all", root=root)]), "<= 30 s")
        if "warm" in parts:
            warm = [timed_cli("runs", "ls", "--json", "--all", root=root) for _ in range(3)]
            show("mihd runs ls --json --all, warm (median of 3)", seconds(warm), "<= 1 s")
        if "results" in parts:
            across_slices(root)
        if "refresh" in parts:
            dashboard_refresh(root)
        if "dashboard" in parts:
            dashboard(root, args)
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
