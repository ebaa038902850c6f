"""Fan-out figures: the 14-cell demo grid's wall time run one cell after another (one process), as local
`--parallel 2` workers and as a Slurm job array on 2 slots (goal: fanned out <= 0.6x sequential); and two
staig_fusion cells at once on 2 cores against one after the other (goal: no worse than sequential, i.e. the
workers' thread shares do not thrash). Embeddings are extracted once beforehand, so every mode starts alike;
wall time = from launch to the grid's end, as its run dir records them.

python benchmarks/bench_fanout.py [--skip-slurm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fanout_helpers import BENCH_14  # noqa: E402
from mihd.runs.status import list_runs  # noqa: E402

STAIG_PAIR = ("grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "staig_fusion", "--cluster", "gmm,kmeans")


def mihd(root: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "mihd", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "MIHD_ROOT": str(root)})
    if proc.returncode != 0:
        raise SystemExit(f"mihd {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def wall(root: Path, launch_args: list[str], grid: tuple) -> tuple[float, str]:
    """Seconds from launch to the grid's end, and its final status."""
    t0 = time.time()
    run_id = mihd(root, "launch", *launch_args, "--", *grid)
    while True:
        v = next(v for v in list_runs(root, all=True) if v.id == run_id)
        if not v.active:
            return (v.ended or time.time()) - t0, v.status
        time.sleep(1.0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-slurm", action="store_true")
    args = ap.parse_args()
    from mihd.compute import allowed_cores
    from mihd.data.demo import ensure_demo

    root = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    try:
        ensure_demo(root)
        for flag, name in (("--gene", "pca"), ("--vision", "texture")):
            mihd(root, "extract", "demo", flag, name)
        print(f"cores allowed here: {allowed_cores()[0]} ({allowed_cores()[1]}); load {open('/proc/loadavg').read().split()[:3]}")
        modes = [("sequential (--parallel 1)", ["--parallel", "1"]), ("local --parallel 2", ["--parallel", "2"])]
        if not args.skip_slurm and shutil.which("sbatch"):
            modes.append(("slurm array, --max-parallel 2", ["--backend", "slurm", "--cpus", "1", "--max-parallel", "2"]))
        base = None
        print("14-cell demo grid (pca+texture x 7 fusions x gmm,kmeans):")
        for name, launch_args in modes:
            secs, status = wall(root, launch_args, BENCH_14)
            base = base or secs
            print(f"  {name:<32} {secs:7.1f} s  {secs / base:5.2f}x sequential  ({status})")
        print("two staig_fusion cells on 2 cores:")
        seq, _ = wall(root, ["--parallel", "1"], STAIG_PAIR)
        par, status = wall(root, ["--parallel", "2"], STAIG_PAIR)
        print(f"  one after the other {seq:7.1f} s; at once {par:7.1f} s = {par / seq:.2f}x ({status})")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
