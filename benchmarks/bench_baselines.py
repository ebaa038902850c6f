"""Cell time of each published baseline (graphst, stagate, spagcn) on a real slice: `mihd run` as a user runs
it (their published epochs, --drop-unlabelled), with the time split into preparation (the package's own
preprocessing and graph), training (its epochs, from the run's `train` events) and the rest, and the cores
and load the run saw. Training dominates; a GPU shortens exactly that part (see docs/BASELINES.md).

Run: .venv/bin/python benchmarks/bench_baselines.py [--slice DIR] [--fusion graphst,stagate,spagcn] [--seed 0]
     .venv/bin/python benchmarks/bench_baselines.py --from RUN_DIR [RUN_DIR ...]   (figures of finished runs)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DLPFC = REPO.parent / "shared" / "data" / "dlpfc_151673"


def figures(run_dir: Path) -> dict:
    """What one finished run says of its cell's time."""
    result = json.loads((run_dir / "result.json").read_text())
    cell = result["cells"][0]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    fuse = [e["t"] for e in events if e["kind"] == "stage" and e["stage"] == "fuse"]
    train = [e for e in events if e["kind"] == "stage" and e["stage"] == "train"]
    epochs = max((e["done"] for e in train), default=0)
    trained = train[-1]["t"] - train[0]["t"] if len(train) > 1 else 0.0
    return {"slice": result["slice"], "fusion": cell["fusion"], "spots": cell.get("n_scored_spots"),
            "ari": cell["ari"], "error": cell.get("error"), "total": cell["seconds"]["total"],
            "prepare": (train[0]["t"] - fuse[0]) if train and fuse else None, "train": trained, "epochs": epochs,
            "per_epoch": trained / epochs if epochs else None}


def run(slice_dir: Path, fusion: str, seed: int, root: Path) -> Path:
    run_dir = root / "runs-bench" / f"{fusion}-{seed}"
    proc = subprocess.run([sys.executable, "-m", "mihd", "run", str(slice_dir), "--gene", "pca", "--fusion", fusion,
                           "--drop-unlabelled", "--seed", str(seed), "--device", "cpu", "--run-dir", str(run_dir),
                           "--root", str(root)], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        print(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"{fusion}: exit {proc.returncode}")
    return run_dir


def show(rows: list[dict]) -> None:
    from mihd.compute import allowed_cores

    cores, why = allowed_cores()
    print(f"cores this process may use: {cores} ({why}); load average now {os.getloadavg()[0]:.1f}")
    print(f"{'slice':<14} {'fusion':<8} {'spots':>5} {'ARI':>6} {'total s':>8} {'prepare s':>9} {'train s':>8} "
          f"{'epochs':>6} {'s/epoch':>7}")
    for r in rows:
        ari = f"{r['ari']:.3f}" if r["ari"] is not None else "fail"
        prep = f"{r['prepare']:.0f}" if r["prepare"] is not None else "-"
        per = f"{r['per_epoch']:.2f}" if r["per_epoch"] else "-"
        print(f"{r['slice']:<14} {r['fusion']:<8} {r['spots'] or 0:>5} {ari:>6} {r['total']:>8.0f} {prep:>9} "
              f"{r['train']:>8.0f} {r['epochs']:>6} {per:>7}")
        if r["error"]:
            print(f"  {r['error']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice", type=Path, default=DLPFC)
    parser.add_argument("--fusion", default="graphst,stagate,spagcn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from", dest="done", type=Path, nargs="+", help="finished run dirs to report instead")
    args = parser.parse_args()
    if args.done:
        show([figures(d) for d in args.done])
        return
    with tempfile.TemporaryDirectory(prefix="mihd-bench-baselines-") as tmp:
        show([figures(run(args.slice, f, args.seed, Path(tmp))) for f in args.fusion.split(",")])


if __name__ == "__main__":
    main()
