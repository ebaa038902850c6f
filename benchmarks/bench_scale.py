"""The tool at study scale: a workspace of N finished runs (default 10,000), each figure printed beside its goal.

- `mihd runs ls --json --all`, warm (goal <= 1 s) and with no host index, i.e. a cold rebuild (goal <= 30 s)
- `mihd results --across-slices` (goal <= 2 s; plain `mihd results` where this mihd has no --across-slices)
- the dashboard's refresh with nothing changed: its time and how many run files it opened (work that should
  not grow with the number of runs)
- the dashboard, in its own process in a pseudo-terminal: first frame (goal <= 1.5 s), idle CPU with 20 live runs
  at its default refresh and at --interval 2 (goal <= 2 % of one core), RSS (goal <= 200 MB), a key press
  answered: a cursor key on the grid until the redrawn frame reaches the terminal, 20 runs live (median, goal
  <= 100 ms)

The workspace is made with the real writers: real `mihd run`/`mihd grid` runs on the demo slice and on
copies of it registered under other slice names (so results span slices), then copies of those run dirs
under new ids and times (spec.json, proc.json, events and exit.json edited as the writers would write them;
result.json copied; fused arrays hard-linked). The live runs are real supervised processes launched through
the launcher. `--workspace DIR` keeps the workspace (and reuses it when it is already there).

python benchmarks/bench_scale.py [--runs 10000] [--idle 30] [--live 20] [--workspace DIR]
"""

from __future__ import annotations

import argparse
import builtins
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

from bench_tui import first_frame, idle, key_answers  # noqa: E402
from mihd.runs.kill import kill_run  # noqa: E402
from mihd.runs.launch import new_run_id  # noqa: E402
from runs_helpers import drop_index, launch_fake  # noqa: E402
from tui_helpers import no_gpu  # noqa: E402

MIHD = [sys.executable, "-m", "mihd"]
SLICES = ("demo", "s2", "s3")
DAY = 86400.0


def mihd(*args: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*MIHD, *args, "--root", str(root)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def checked(*args: str, root: Path) -> str:
    out = mihd(*args, root=root)
    if out.returncode:
        raise SystemExit(f"mihd {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return out.stdout


def real_runs(root: Path) -> list[Path]:
    """A few real cheap runs: a one-cell run and a three-cell grid (three seeds) per slice."""
    checked("run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat", "--cluster", "kmeans",
            root=root)
    for name in SLICES[1:]:
        checked("slices", "add", name, str(root / "demo" / "demo.h5ad"), root=root)
        checked("run", name, "--gene", "pca", "--vision", "texture", "--fusion", "concat", "--cluster", "kmeans",
                root=root)
    for name in SLICES:
        checked("grid", name, "--gene", "pca", "--vision", "texture", "--fusion", "mean,gene_only,vision_only",
                "--cluster", "kmeans", "--seeds", "3", root=root)
    return sorted(p for p in (root / "runs").iterdir() if p.is_dir())


def shifted_events(text: str, dt: float) -> str:
    lines = []
    for line in text.splitlines():
        event = json.loads(line)
        event["t"] = round(event["t"] + dt, 3)
        lines.append(json.dumps(event))
    return "".join(line + "\n" for line in lines)


def copy_run(template: Path, runs: Path, when: float) -> None:
    """The template run dir again as if it had started at `when`: a new id, its times moved."""
    spec = json.loads((template / "spec.json").read_text())
    dt = when - spec["created"]
    run_id = new_run_id(when)
    dest = runs / run_id
    dest.mkdir()
    spec.update(id=run_id, created=round(when, 3))
    (dest / "spec.json").write_text(json.dumps(spec, indent=1, sort_keys=True))
    for name, field in (("proc.json", "started"), ("exit.json", "ended")):
        data = json.loads((template / name).read_text())
        data[field] = round(data[field] + dt, 3)
        (dest / name).write_text(json.dumps(data, indent=1, sort_keys=True))
    (dest / "events.jsonl").write_text(shifted_events((template / "events.jsonl").read_text(), dt))
    shutil.copyfile(template / "result.json", dest / "result.json")
    if (template / "fused").is_dir():
        (dest / "fused").mkdir()
        for f in (template / "fused").iterdir():
            os.link(f, dest / "fused" / f.name)


def make_workspace(root: Path, n: int) -> None:
    t = time.perf_counter()
    templates = real_runs(root)
    print(f"workspace: {len(templates)} real runs over slices {', '.join(SLICES)} in {time.perf_counter() - t:.0f} s",
          flush=True)
    t, start = time.perf_counter(), time.time() - 30 * DAY
    for i in range(n - len(templates)):
        copy_run(templates[i % len(templates)], root / "runs", start + i * (29 * DAY / n))
    print(f"workspace: {n} run dirs ({time.perf_counter() - t:.0f} s of copying)", flush=True)


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
    """Counts the files opened under a folder (builtins.open and os.open) while it is active."""

    def __init__(self, under: Path):
        self.under, self.paths = str(under), []

    def __enter__(self):
        self._open, self._os_open = builtins.open, os.open

        def counted_open(file, *a, **kw):
            self._note(file)
            return self._open(file, *a, **kw)

        def counted_os_open(path, *a, **kw):
            self._note(path)
            return self._os_open(path, *a, **kw)

        builtins.open, os.open = counted_open, counted_os_open
        return self

    def _note(self, path) -> None:
        if isinstance(path, (str, os.PathLike)) and str(path).startswith(self.under):
            self.paths.append(str(path))

    def __exit__(self, *_):
        builtins.open, os.open = self._open, self._os_open


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000, help="finished run dirs in the workspace (default 10000)")
    ap.add_argument("--idle", type=float, default=30, help="seconds of idle CPU measured (default 30)")
    ap.add_argument("--live", type=int, default=20, help="live runs while idle (default 20)")
    ap.add_argument("--keys", type=float, default=10, help="seconds of key presses (default 10)")
    ap.add_argument("--workspace", type=Path, help="keep the workspace here (reused when already made)")
    args = ap.parse_args()
    tmp = None
    if args.workspace is None:
        tmp = tempfile.TemporaryDirectory()
        args.workspace = Path(tmp.name) / "ws"
    root = args.workspace
    try:
        if not (root / "runs").is_dir():
            root.mkdir(parents=True, exist_ok=True)
            make_workspace(root, args.runs)
        n = sum(1 for _ in os.scandir(root / "runs"))
        print(f"{n} run dirs in {root}", flush=True)
        drop_index(root)
        show("mihd runs ls --json --all, cold (no host index: a full rebuild)",
             seconds([timed_cli("runs", "ls", "--json", "--all", root=root)]), "<= 30 s")
        warm = [timed_cli("runs", "ls", "--json", "--all", root=root) for _ in range(3)]
        show("mihd runs ls --json --all, warm (median of 3)", seconds(warm), "<= 1 s")
        across = "--across-slices" in checked("results", "--help", root=root)
        if not across:
            print("note: this mihd has no `results --across-slices`; timing `mihd results` instead", flush=True)
        cmd = ("results", "--across-slices") if across else ("results",)
        took = [timed_cli(*cmd, root=root) for _ in range(3)]
        show(f"mihd {' '.join(cmd)} (median of 3)", seconds(took), "<= 2 s")
        dashboard_refresh(root)
        frame, data = first_frame(root)
        show("dashboard first frame", f"{frame:.2f} s (grid filled: {data:.2f} s)", "<= 1.5 s")
        ids = [launch_fake(root, "--seconds", "600") for _ in range(args.live)]
        try:
            out = idle(root, args.idle)
            fast = idle(root, args.idle, interval=2)
            keys = key_answers(root, args.keys)
        finally:
            for rid in ids:
                try:
                    kill_run(root, rid, "KILL", grace=1)
                except Exception:
                    pass
        show(f"dashboard idle CPU with {args.live} live runs over {args.idle:.0f} s (default 3 s refresh)",
             f"{out['cpu_percent']:.2f} % of one core (--interval 2: {fast['cpu_percent']:.2f} %)", "<= 2 %")
        show("dashboard RSS", f"{out['rss_mb']} MB (max {out['rss_max_mb']} MB)", "<= 200 MB")
        show(f"dashboard key press answered (grid cursor to redrawn frame in its terminal, {args.live} live runs; median)",
             f"{1000 * median(keys):.0f} ms (max {1000 * max(keys):.0f} ms over {len(keys)} keys)", "<= 100 ms")
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
