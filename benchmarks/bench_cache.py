"""Foundation figures (issue 2): extraction per encoder, cache-hit load vs np.load, `mihd cache ls` at 5,000.

Run: .venv/bin/python benchmarks/bench_cache.py [--quick]
"""

from __future__ import annotations

import argparse
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

DLPFC = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dlpfc_151673"


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
    array = np.random.default_rng(0).normal(size=(3639, 1536)).astype(np.float32)
    cache = EmbeddingCache(root)
    key = CacheKey("bench", "vision", "uni2", "standard")
    cache.put(key, array, [f"B{i}" for i in range(3639)], fingerprint="fp")
    npy = root / "same.npy"
    np.save(npy, array)
    hit = best_of(lambda: cache.lookup(key, "fp"))
    load = best_of(lambda: np.load(npy))
    print(f"3639x1536 float32 ({array.nbytes / 1e6:.1f} MB): cache hit {hit * 1e3:.1f} ms, np.load {load * 1e3:.1f} ms, "
          f"ratio {hit / load:.2f} (goal <= 2)")


def bench_ls(root: Path, n: int) -> None:
    cache = EmbeddingCache(root)
    small = np.zeros((10, 4), dtype=np.float32)
    spots = [f"B{i}" for i in range(10)]
    for i in range(n):
        cache.put(CacheKey(f"slice{i % 50}", "vision", f"enc{i // 50}", "standard"), small, spots, fingerprint="fp")
    api = best_of(lambda: cache.entries(), repeat=3)
    cli = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mihd", "cache", "ls", "--root", str(root)], check=True, capture_output=True)
        cli.append(time.perf_counter() - start)
    print(f"cache ls over {n} entries: entries() {api * 1e3:.0f} ms; `mihd cache ls` process {min(cli):.2f} s "
          f"(median {statistics.median(cli):.2f} s, incl. interpreter start) (goal <= 0.2 s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the slow encoders")
    args = parser.parse_args()
    encoders = [("gene", "pca"), ("vision", "texture")] + ([] if args.quick else [("gene", "mlp")])
    with tempfile.TemporaryDirectory() as tmp:
        bench_hit_vs_npload(Path(tmp) / "hit")
        bench_ls(Path(tmp) / "ls", 5000)
        bench_extraction(Path(tmp) / "ws", encoders)


if __name__ == "__main__":
    main()
