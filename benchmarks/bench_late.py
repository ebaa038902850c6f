"""How early a run that cannot finish in time is flagged `late`, and how often a run that ends in time is.

Real launched runs on the demo slice (its embeddings cached first), judged by nothing but their own
supervisors (the `late` event in events.jsonl; no watcher runs meanwhile), with competing CPU jobs
started for the whole benchmark:
  founding case: `--expect 20s` for a staig_fusion run with 5 seeds (about 4 minutes alone on an idle
                 machine); each trial is killed once flagged, or after --give-up seconds. Goal: flagged
                 while under 20 s have passed. --grid-trials: the same as a fanned-out grid of two such
                 cells (kmeans, gmm) side by side, never run before, judged by its runner from its cells.
  in time:       runs given an expected time they meet, as a researcher would give it (about 1.5x what
                 such a run takes here): staig_fusion with one seed (--staig-expect), attention (1.5x a
                 calibration run), concat (30 s). Goal: 0 of those that end in time flagged late.
Printed: per trial the elapsed time at the flag and the projection it gave; per in-time run its true
running time, its expected time and whether it was flagged.

python benchmarks/bench_late.py [--trials 10] [--grid-trials 0] [--burners 1] [--give-up 90] [--staig N]
                                [--attention N] [--concat N]
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MIHD = [sys.executable, "-m", "mihd"]
DEMO = ["run", "demo", "--gene", "pca", "--vision", "texture"]
GRID = ["grid", *DEMO[1:]]
GRID_CELLS = ("--cluster", "kmeans,gmm")
BURN = "while True: pass"


def mihd(*args: str) -> str:
    return subprocess.run([*MIHD, *args], capture_output=True, text=True, check=True, cwd=REPO).stdout.strip()


def launch(root: Path, expect: str, *run_args: str, what=DEMO, launch_args=()) -> Path:
    run_id = mihd("launch", "--root", str(root), "--expect", expect, *launch_args, "--", *what, *run_args)
    return root / "runs" / run_id.splitlines()[-1]


def late_event(run_dir: Path) -> dict | None:
    try:
        lines = (run_dir / "events.jsonl").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("kind") == "late":
            return ev
    return None


def ended(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "exit.json").read_text())
    except (OSError, ValueError):
        return None


def started(run_dir: Path) -> float | None:
    try:
        return json.loads((run_dir / "proc.json").read_text())["started"]
    except (OSError, ValueError, KeyError):
        return None


def founding_trials(root: Path, n: int, give_up: float, grid: bool = False) -> list[tuple]:
    rows = []
    for i in range(n):
        run_dir = launch(root, "20s", "--fusion", "staig_fusion", "--seeds", "5", *(GRID_CELLS if grid else ()),
                         what=GRID if grid else DEMO, launch_args=("--parallel", "2") if grid else ())
        deadline = time.time() + give_up
        ev = None
        while time.time() < deadline and ev is None and not ended(run_dir):
            time.sleep(0.5)
            ev = late_event(run_dir)
        subprocess.run([*MIHD, "runs", "kill", "--root", str(root), run_dir.name], capture_output=True, cwd=REPO)
        rows.append((i + 1, ev["elapsed"] if ev else None, ev["reason"] if ev else "not flagged"))
        print(f"  trial {i + 1:2d}: " + (f"late at {ev['elapsed']:5.1f} s: {ev['reason']}" if ev else
                                          f"not flagged within {give_up:.0f} s"), flush=True)
    return rows


def in_time(root: Path, batches: list[tuple[float, tuple[str, ...]]], parallel: int) -> list[tuple]:
    rows, pending = [], list(batches)
    live: list[tuple[Path, float, tuple[str, ...]]] = []
    while pending or live:
        while pending and len(live) < parallel:
            expect, args = pending.pop(0)
            live.append((launch(root, f"{expect:.0f}s", *args), expect, args))
        time.sleep(1.0)
        for run_dir, expect, args in list(live):
            end = ended(run_dir)
            if end is None:
                continue
            live.remove((run_dir, expect, args))
            took = end["ended"] - (started(run_dir) or end["ended"])
            ev = late_event(run_dir)
            rows.append((run_dir.name, " ".join(a for a in args if not a.startswith("--")), took, expect, ev))
            print(f"  {rows[-1][1]:<18} took {took:5.1f} s, expected {expect:4.0f} s: "
                  + (f"FLAGGED late at {ev['elapsed']:.1f} s ({ev['reason']})" if ev else "not flagged"), flush=True)
    return rows


def summarise(what: str, trials: list[tuple]) -> None:
    times = sorted(t[1] for t in trials if t[1] is not None)
    print(f"\n{what}: flagged late at (s since its start)")
    print("  trial  flagged at  projection")
    for i, at, why in trials:
        print(f"  {i:5d}  {'-' if at is None else f'{at:7.1f} s':>10}  {why}")
    if times:
        print(f"  flagged {len(times)}/{len(trials)}; under 20 s: {sum(t < 20 for t in times)}/{len(trials)}; "
              f"median {times[len(times) // 2]:.1f} s, earliest {times[0]:.1f} s, latest {times[-1]:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--grid-trials", type=int, default=0, help="founding-case trials as a 2-cell fanned-out grid")
    ap.add_argument("--staig", type=int, default=5, help="in-time staig_fusion runs")
    ap.add_argument("--attention", type=int, default=8, help="in-time attention runs")
    ap.add_argument("--concat", type=int, default=7, help="in-time concat runs")
    ap.add_argument("--staig-expect", type=float, default=420.0, help="their --expect (s): 1.5x a typical run here")
    ap.add_argument("--burners", type=int, default=1, help="competing CPU jobs during the benchmark")
    ap.add_argument("--give-up", type=float, default=90.0)
    ap.add_argument("--parallel", type=int, default=2, help="in-time runs at once")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the competing jobs go with it
    root = Path(tempfile.mkdtemp(prefix="bench_late_"))
    print(f"workspace {root}; caching the demo embeddings")
    mihd("extract", "demo", "--gene", "pca", "--root", str(root))
    mihd("extract", "demo", "--vision", "texture", "--root", str(root))
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(args.burners)]
    try:
        t0 = time.time()
        print(f"calibration: one attention run ({args.burners} competing CPU jobs)")
        calib = in_time(root, [(600.0, ("--fusion", "attention"))], 1)[0][2]
        print(f"founding case: --expect 20s, staig_fusion x 5 seeds ({args.trials} trials)")
        trials = founding_trials(root, args.trials, args.give_up)
        if args.grid_trials:
            print(f"founding case as a grid: 2 such cells side by side ({args.grid_trials} trials)")
            grid_trials = founding_trials(root, args.grid_trials, args.give_up, grid=True)
        plan = [(args.staig_expect, ("--fusion", "staig_fusion"))] * args.staig + \
               [(round(1.5 * calib), ("--fusion", "attention"))] * args.attention + \
               [(30.0, ("--fusion", "concat"))] * args.concat
        print(f"in time: {len(plan)} runs, {args.parallel} at a time")
        rows = in_time(root, plan, args.parallel)
    finally:
        for b in burners:
            b.kill()
    summarise("founding case (--expect 20s, truly ~4 min)", trials)
    if args.grid_trials:
        summarise("founding case as a 2-cell grid (--expect 20s, truly ~4 min)", grid_trials)
    met = [r for r in rows if r[2] <= r[3]]
    wrong = [r for r in met if r[4]]
    print(f"\nin-time runs: {len(wrong)} of {len(met)} that ended within their expected time were flagged late "
          f"({len(rows) - len(met)} of {len(rows)} overran it for real, flagged: "
          f"{sum(bool(r[4]) for r in rows if r not in met)}; attention calibration run {calib:.1f} s)")
    print(f"benchmark took {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
