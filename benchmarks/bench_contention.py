"""A training cell alone vs beside busy loops: does it take its fair share or thrash?

Runs `mihd run demo --gene pca --vision texture --fusion staig_fusion` (embeddings extracted first, so
the cell is training + clustering only), alone and then beside N `while True: pass` loops, back to back,
`--repeat` times (on a shared machine the background load moves; compare each pair). Prints wall and
CPU seconds of each run and the loaded/alone ratio. With two loops on two cores a fair share is about 2x;
runtime threads spinning at barriers made it 13x. CPU seconds far above wall x threads mean spinning.

Run: python benchmarks/bench_contention.py [--busy 2] [--repeat 3] [--fusion staig_fusion]
     [--repo PATH (another checkout, e.g. the previous commit, to compare)] [--env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def mihd(repo: Path, root: Path, env: dict, *args: str) -> tuple[float, float]:
    """Run `mihd ARGS`; (wall seconds, CPU seconds of the process and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mihd", *args, "--root", str(root)], cwd=repo, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"mihd {' '.join(args)} failed:\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def busy_loops(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=2, help="busy loops beside the loaded run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fusion", default="staig_fusion")
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose mihd is measured")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.repo), **dict(e.split("=", 1) for e in args.env)}
    cell = ("run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", args.fusion)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        mihd(args.repo, root, env, "extract", "demo", "--gene", "pca")
        mihd(args.repo, root, env, "extract", "demo", "--vision", "texture")
        print(f"{args.repo}: demo pca+texture {args.fusion}; {os.cpu_count()} CPUs, "
              f"affinity {len(os.sched_getaffinity(0))}; extra env {args.env or 'none'}")
        for i in range(args.repeat):
            load = os.getloadavg()[0]
            alone, alone_cpu = mihd(args.repo, root, env, *cell)
            loops = busy_loops(args.busy)
            try:
                loaded, loaded_cpu = mihd(args.repo, root, env, *cell)
            finally:
                for p in loops:
                    p.kill()
                    p.wait()
            print(f"  #{i + 1} (load before {load:.1f}): alone {alone:6.1f} s (CPU {alone_cpu:6.1f} s), "
                  f"beside {args.busy} busy loops {loaded:6.1f} s (CPU {loaded_cpu:6.1f} s): "
                  f"ratio {loaded / alone:.2f}x", flush=True)


if __name__ == "__main__":
    main()
