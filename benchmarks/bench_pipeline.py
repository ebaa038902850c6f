"""Pipeline figures (issue 3): seconds per cell with cached embeddings on 151673 (staig_fusion included),
ARI per fusion x clusterer, and that `mihd grid` with 6 fusions x 2 vision encoders loads each embedding once.

Run: .venv/bin/python benchmarks/bench_pipeline.py [--seeds 3] [--fusions a,b] [--clusters gmm,kmeans]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mihd.data import load_slice
from mihd.extract import get_embedding
from mihd.fusion import FUSIONS
from mihd.pipeline import grid_cells, run_cells
from mihd.rundir import read_events

DLPFC = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dlpfc_151673"


def table_151673(root: Path, gene: str, fusions, clusters, seeds: int, refine: bool) -> None:
    adata = load_slice(DLPFC, root=root)
    for modality, name in (("gene", gene), ("vision", "texture")):
        got = get_embedding(adata, modality, name, root=root)
        print(f"  cached {modality} {name}: {got.status} in {got.seconds:.1f} s")
    print(f"151673, gene {gene}, vision texture (low-res image only), 7 clusters, NA spots dropped, refine={refine}")
    print(f"  {'fusion':13s} {'cluster':8s} {'ARI mean':>8s} {'sd':>6s} {'NMI':>6s} {'s/cell':>7s}")
    for fusion in fusions:
        for cluster in clusters:
            aris, nmis, secs = [], [], []
            for seed in range(seeds):
                started = time.perf_counter()
                result = run_cells(adata, grid_cells([gene], ["texture"], [fusion], [cluster]), root=root,
                                   seed=seed, refine=refine, drop_unlabelled=True)
                secs.append(time.perf_counter() - started)
                aris.append(result["cells"][0]["ari"])
                nmis.append(result["cells"][0]["nmi"])
            sd = statistics.stdev(aris) if len(aris) > 1 else 0.0
            print(f"  {fusion:13s} {cluster:8s} {statistics.mean(aris):8.3f} {sd:6.3f} {statistics.mean(nmis):6.3f} "
                  f"{statistics.median(secs):7.1f}", flush=True)


def grid_loads_once(root: Path) -> None:
    adata = load_slice("demo", root=root)
    get_embedding(adata, "vision", "texture", root=root, variant="standard", cache_name="texture_b")
    run_dir = root / "grid-bench"
    started = time.perf_counter()
    cells = grid_cells(["pca"], ["texture", "texture_b"], list(FUSIONS), ["kmeans"])
    run_cells(adata, cells, root=root, run_dir=run_dir, keep_going=True)
    events, _ = read_events(run_dir)
    loads = [(e["modality"], e["name"]) for e in events if e["kind"] == "cache"]
    print(f"demo grid {len(FUSIONS)} fusions x 2 vision encoders = {len(cells)} cells in "
          f"{time.perf_counter() - started:.1f} s; embedding loads: {len(loads)} {sorted(loads)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--gene", default="pca")
    parser.add_argument("--fusions", default=",".join(FUSIONS))
    parser.add_argument("--clusters", default="gmm,kmeans,leiden")
    parser.add_argument("--refine", action="store_true")
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_grid:
            grid_loads_once(Path(tmp))
        if DLPFC.is_dir():
            table_151673(Path(tmp), args.gene, args.fusions.split(","), args.clusters.split(","), args.seeds, args.refine)


if __name__ == "__main__":
    main()
