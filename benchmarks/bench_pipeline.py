"""Pipeline figures (issue 3): seconds per cell with cached embeddings on 151673 (staig_fusion included),
ARI per fusion x clusterer (+- refine) on the demo slice and 151673, and that `mihd grid` with 6 fusions x 2 vision encoders loads each embedding once.

Run: .venv/bin/python benchmarks/bench_pipeline.py [--seeds 3] [--fusions a,b] [--clusters gmm,kmeans]
     [--skip-grid] [--skip-demo]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from mihd.cluster import cluster
from mihd.data import load_slice
from mihd.extract import get_embedding
from mihd.fusion import FUSIONS, run_cell_arrays
from mihd.metrics import ari
from mihd.pipeline import run_cells
from mihd.plan import RunSpec, grid_cells
from mihd.rundir import read_events

DLPFC = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "dlpfc_151673"


def ari_table(root: Path, source, about: str, gene: str, fusions, clusters, seeds: int) -> None:
    """ARI per fusion x clusterer (with and without the 15-NN refine), NA spots dropped before fusing.

    Each fusion runs once per seed through `run_cell_arrays` (the pipeline's array path); its fused
    array is then clustered by every clusterer, so staig_fusion trains once per seed, not per column.
    """
    import numpy as np

    adata = load_slice(source, root=root)
    k = adata.obs["truth"].nunique()
    keep = adata.obs["truth"].notna().to_numpy()
    truth = adata.obs["truth"].astype(str).to_numpy()[keep]
    coords = np.asarray(adata.obsm["spatial"], dtype=np.float64)[keep]
    emb = {}
    for modality, name in (("gene", gene), ("vision", "texture")):
        got = get_embedding(adata, modality, name, root=root)
        emb[modality] = got.embedding.subset(keep)
        print(f"  cached {modality} {name}: {got.status} in {got.seconds:.1f} s")
    columns = [(c, r) for c in clusters for r in (False, True)]
    print(f"{about}, gene {gene}, vision texture, {k} clusters, {keep.sum()} labelled spots, "
          f"ARI mean+-sd over {seeds} seeds")
    print(f"  {'fusion':13s} " + " ".join(f"{c + ('+refine' if r else ''):>13s}" for c, r in columns) + "  fuse s")
    for fusion in fusions:
        scores = {col: [] for col in columns}
        fuse_seconds = []
        for seed in range(seeds):
            _, fused, timings = run_cell_arrays(emb["gene"], emb["vision"], coords, fusion=fusion,
                                                cluster=clusters[0], n_clusters=k, seed=seed)
            fuse_seconds.append(timings["fuse"])
            for c, r in columns:
                labels = cluster(fused, c, k, seed=seed, refine=r, coords=coords)
                scores[(c, r)].append(ari(labels, truth))
        cells = " ".join(f"{statistics.mean(v):6.3f}+-{(statistics.stdev(v) if len(v) > 1 else 0):.3f}"
                         for v in scores.values())
        print(f"  {fusion:13s} {cells}  {statistics.median(fuse_seconds):6.1f}", flush=True)


def grid_loads_once(root: Path) -> None:
    adata = load_slice("demo", root=root)
    get_embedding(adata, "vision", "texture", root=root, variant="standard", cache_name="texture_b")
    run_dir = root / "grid-bench"
    started = time.perf_counter()
    cells = grid_cells("demo", ["pca"], ["texture", "texture_b"], list(FUSIONS), ["kmeans"])
    run_cells(adata, RunSpec(cells, kind="grid"), root=root, run_dir=run_dir)
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
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_grid:
            grid_loads_once(Path(tmp))
        tables = [] if args.skip_demo else [("demo", "demo (synthetic, 6 layers)")]
        tables += [(DLPFC, "151673 (low-res image only)")] if DLPFC.is_dir() else []
        for source, about in tables:
            ari_table(Path(tmp), source, about, args.gene, args.fusions.split(","), args.clusters.split(","),
                      args.seeds)


if __name__ == "__main__":
    main()
