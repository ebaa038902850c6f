"""Cache figures: extraction per encoder, a checked hit vs np.load, `mihd cache ls` over 5,000 entries
(cold index and warm), and single flight (N launches at once on a cold cache compute one embedding once).

Run: .venv/bin/python benchmarks/bench_cache.py [--quick] [--root DIR] [--launches 20]
  --root DIR: where the workspaces go (e.g. a mount of shared storage; default a temp folder).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mihd.cache import CacheKey, EmbeddingCache
from mihd.data import load_slice
from mihd.extract import get_embedding
from mihd.workspace import host_index_dir

DLPFC = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dlpfc_151673"
REPO = Path(__file__).resolve().parent.parent


def best_of(fn, repeat=7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_extraction(root: Path, encoders) -> None:
    sources = [("demo", "demo")] + ([("151673", DLPFC)] if DLPFC.is_dir() else [])
    print("extraction (cold, seconds) and cache hit (seconds):")
    for label, source in sources:
        adata = load_slice(source, root=root)
        for modality, name in encoders:
            miss = get_embedding(adata, modality, name, root=root)
            hit = get_embedding(adata, modality, name, root=root)
            print(f"  {label:7s} {modality:6s} {name:8s} extract {miss.seconds:7.2f}  hit {hit.seconds:.4f}  "
                  f"ratio {miss.seconds / hit.seconds:,.0f}x  shape {miss.embedding.array.shape}")


def bench_hit_vs_npload(root: Path) -> None:
    """A hit reads the .json, the .npy (hashing each chunk as it arrives) and the spot list."""
    array = np.random.default_rng(0).normal(size=(3639, 1536)).astype(np.float32)
    cache = EmbeddingCache(root)
    key = CacheKey("bench", "vision", "uni2", "standard")
    cache.put(key, array, [f"B{i}" for i in range(3639)], fingerprint="fp")
    blob = cache.slice_dir("bench") / cache.meta(key)["blob"]
    npy = root / "same.npy"
    np.save(npy, array)
    assert cache.lookup(key, "fp").status == "hit"
    hit = best_of(lambda: cache.lookup(key, "fp"))
    fresh = best_of(lambda: EmbeddingCache(root).lookup(key, "fp"))  # a new process's first hit: spot list read too
    load = best_of(lambda: np.load(npy))
    unchecked = best_of(lambda: np.load(blob))  # the same read without the checksum
    print(f"3639x1536 float32 ({array.nbytes / 1e6:.1f} MB): checked hit {hit * 1e3:.1f} ms "
          f"(new cache object {fresh * 1e3:.1f} ms), the blob read unchecked {unchecked * 1e3:.1f} ms, "
          f"np.load {load * 1e3:.1f} ms; ratio {hit / load:.2f} ({fresh / load:.2f}) (goal <= 2)")


def bench_ls(root: Path, n: int) -> None:
    cache = EmbeddingCache(root)
    small = np.zeros((10, 4), dtype=np.float32)
    spots = [f"B{i}" for i in range(10)]
    for i in range(n):
        cache.put(CacheKey(f"slice{i % 50}", "vision", f"enc{i // 50}", "standard"), small, spots, fingerprint="fp")
    shutil.rmtree(host_index_dir(root), ignore_errors=True)
    start = time.perf_counter()
    assert len(EmbeddingCache(root).entries()) == n
    cold = time.perf_counter() - start
    api = best_of(lambda: EmbeddingCache(root).entries(), repeat=3)
    cli = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mihd", "cache", "ls", "--root", str(root)], check=True, capture_output=True)
        cli.append(time.perf_counter() - start)
    print(f"cache ls over {n} entries: first listing (index built) {cold:.2f} s; indexed entries() {api * 1e3:.0f} ms; "
          f"`mihd cache ls` process {min(cli):.2f} s (median {statistics.median(cli):.2f} s, incl. interpreter start) "
          f"(goal <= 0.2 s once indexed)")


def bench_single_flight(root: Path, launches: int) -> None:
    """`launches` x `mihd extract demo --gene pca` at once on a cold cache: how many computed it."""
    from mihd.data.demo import ensure_demo
    from mihd.data.registry import register

    register(root, "demo", ensure_demo(root / "demo"))
    env = {**os.environ, "MIHD_ROOT": str(root)}
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "mihd", "extract", "demo", "--gene", "pca"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(launches)]
    outs = [p.communicate() for p in procs]
    wall = time.perf_counter() - start
    statuses = [out.split()[0] if out else f"rc={p.returncode}" for (out, _), p in zip(outs, procs)]
    waited = sum("waiting for" in err for _, err in outs)
    tracebacks = sum("Traceback" in err for _, err in outs)
    print(f"{launches} launches at once on a cold cache: computed {statuses.count('miss')}x, hit {statuses.count('hit')}x "
          f"({waited} said they were waiting), tracebacks {tracebacks}, wall {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the slow encoders")
    parser.add_argument("--root", help="folder for the workspaces (default: a temp folder)")
    parser.add_argument("--launches", type=int, default=20)
    args = parser.parse_args()
    encoders = [("gene", "pca"), ("vision", "texture")] + ([] if args.quick else [("gene", "mlp")])
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        bench_hit_vs_npload(Path(tmp) / "hit")
        bench_ls(Path(tmp) / "ls", 5000)
        bench_single_flight(Path(tmp) / "flight", args.launches)
        bench_extraction(Path(tmp) / "ws", encoders)


if __name__ == "__main__":
    main()
