"""`mihd export`: a real run's cells as an .h5ad that scanpy reads and plots, and a predicted-beside-truth PNG."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_dir_of, run_mihd, with_demo

from mihd.domain_colours import matched_colours, truth_colours
from mihd.export import PNG_SIZE
from mihd.results import fused_path, save_fused
from mihd.rundir import read_result

CONCAT = "mihd_pca+texture_concat_kmeans"
GENE_ONLY = "mihd_pca+texture_gene_only_kmeans"


def _run(root: Path, *args: str) -> Path:
    return run_dir_of(*args, "--cluster", "kmeans", root=root)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_h5ad):
    """A workspace with a real grid (concat, gene_only) and a gene_only run that left unlabelled spots out."""
    root = with_demo(tmp_path_factory.mktemp("export") / "ws", demo_h5ad)
    grid = _run(root, "grid", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat,gene_only")
    dropped = _run(root, "run", "demo", "--gene", "pca", "--fusion", "gene_only", "--drop-unlabelled")
    return root, grid, dropped



def test_a_run_keeps_each_cells_fused_embedding(runs):
    root, _, _ = runs
    run_dir = _run(root, "run", "demo", "--gene", "pca", "--fusion", "gene_smooth", "--drop-unlabelled")
    scored = read_result(run_dir)["cells"][0]["n_scored_spots"]
    fused = np.load(fused_path(run_dir, 0))
    assert fused.dtype == np.float32 and fused.shape[0] == scored and fused.shape[1] > 0 and np.isfinite(fused).all()


def _keep_fused(run_dir: Path, index: int, scored_only: bool = False) -> np.ndarray:
    """A fused embedding whose first column is the spot's position in the run (so alignment can be checked)."""
    labels = np.asarray(read_result(run_dir)["cells"][index]["labels"])
    pos = np.flatnonzero(labels >= 0) if scored_only else np.arange(labels.size)
    array = np.column_stack([pos, np.random.default_rng(index).normal(size=(pos.size, 7))]).astype(np.float32)
    save_fused(run_dir, index, array)
    return array


def _read(path: Path):
    import scanpy as sc

    return sc.read_h5ad(path)


def test_h5ad_holds_labels_embedding_and_run_and_scanpy_plots_it(runs, tmp_path, demo_h5ad):
    import anndata
    import matplotlib

    matplotlib.use("Agg")
    import scanpy as sc

    root, grid, _ = runs
    fused = [_keep_fused(grid, 0), _keep_fused(grid, 1)]
    out = tmp_path / "grid.h5ad"
    proc = run_mihd("export", grid.name, "--h5ad", str(out), root=root)
    assert proc.returncode == 0, proc.stderr
    assert "mihd: note" not in proc.stderr and f"wrote {out}: 2 cell(s)" in proc.stdout
    adata, result = _read(out), read_result(grid)
    for index, key in enumerate((CONCAT, GENE_ONLY)):
        cell = result["cells"][index]
        assert adata.obs[key].dtype == "category"
        assert adata.obs[key].astype(str).tolist() == [str(x) for x in cell["labels"]]
        assert len(adata.uns[f"{key}_colors"]) == len(adata.obs[key].cat.categories)
        np.testing.assert_array_equal(adata.obsm[key], fused[index])
        assert adata.uns["mihd_run"]["scores"][key]["ari"] == cell["ari"]
    assert adata.uns["mihd_run"]["id"] == grid.name
    assert [c["fusion"] for c in json.loads(adata.uns["mihd_run"]["spec"])["cells"]] == ["concat", "gene_only"]
    raw = anndata.read_h5ad(demo_h5ad)
    assert (adata.X != raw.X).nnz == 0  # raw counts kept
    axes = sc.pl.spatial(adata, color=[CONCAT, "truth"], show=False)
    assert len(axes) == 2 and axes[0].get_title() == CONCAT


def test_cells_follow_their_barcodes_in_a_reordered_slice(runs, tmp_path, demo_h5ad):
    import anndata

    root, grid, _ = runs
    fused = _keep_fused(grid, 0)
    reordered = tmp_path / "demo_reordered.h5ad"
    anndata.read_h5ad(demo_h5ad)[::-1].copy().write_h5ad(reordered)
    out = tmp_path / "one.h5ad"
    proc = run_mihd("export", grid.name, "--cell", "pca+texture concat kmeans", "--slice", str(reordered),
                    "--h5ad", str(out), root=root)
    assert proc.returncode == 0, proc.stderr
    adata, result = _read(out), read_result(grid)
    assert GENE_ONLY not in adata.obs and list(adata.obs_names) == result["spots"]["barcodes"][::-1]
    assert adata.obs[CONCAT].astype(str).tolist() == [str(x) for x in result["cells"][0]["labels"][::-1]]
    np.testing.assert_array_equal(adata.obsm[CONCAT], fused[::-1])


def test_spots_a_cell_left_out_are_nan(runs, tmp_path):
    root, _, dropped = runs
    fused = _keep_fused(dropped, 0, scored_only=True)
    out = tmp_path / "dropped.h5ad"
    assert run_mihd("export", dropped.name, "--cell", "0", "--h5ad", str(out), root=root).returncode == 0
    adata = _read(out)
    key = "mihd_pca_gene_only_kmeans"
    unscored = adata.obs[key].isna().to_numpy()
    assert unscored.sum() == adata.obs["truth"].isna().sum() > 0
    assert np.isnan(adata.obsm[key][unscored]).all()
    np.testing.assert_array_equal(adata.obsm[key][~unscored], fused)


def test_a_run_that_kept_no_embedding_exports_labels_and_says_so(runs, tmp_path):
    root, grid, _ = runs
    shutil.rmtree(fused_path(grid, 0).parent, ignore_errors=True)
    out = tmp_path / "labels.h5ad"
    proc = run_mihd("export", grid.name, "--cell", "1", "--h5ad", str(out), root=root)
    assert proc.returncode == 0, proc.stderr
    notes = proc.stderr.strip().splitlines()
    assert len(notes) == 1 and notes[0].startswith("mihd: note:") and "obsm" in notes[0], proc.stderr
    adata = _read(out)
    assert GENE_ONLY in adata.obs and GENE_ONLY not in adata.obsm


def test_png_is_predicted_beside_truth_in_matched_colours(runs, tmp_path):
    from PIL import Image

    root, grid, _ = runs
    result = read_result(grid)
    best = max(range(2), key=lambda i: result["cells"][i]["ari"])
    out = tmp_path / "best.png"
    proc = run_mihd("export", grid.name, "--png", str(out), root=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(("demo pca+texture concat kmeans", "demo pca+texture gene_only kmeans")[best])
    image = Image.open(out)
    assert image.format == "PNG" and image.size == PNG_SIZE
    pixels = np.asarray(image.convert("RGB"))
    predicted = {tuple(p) for p in pixels[:, : PNG_SIZE[0] * 2 // 5].reshape(-1, 3)}
    domains = truth_colours(result["spots"]["truth"])
    rgb = {name: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for name, c in domains.items()}
    assert all(colour in predicted for colour in rgb.values()), "each truth domain's colour is a predicted cluster's"


def test_bad_input_is_one_line_and_leaves_nothing(runs, tmp_path, demo_h5ad):
    import anndata

    root, grid, _ = runs
    out = tmp_path / "out"
    out.mkdir()
    h5ad, png = str(out / "x.h5ad"), str(out / "x.png")
    assert_one_line_error(run_mihd("export", "nosuch", "--h5ad", h5ad, root=root), "nosuch")
    assert_one_line_error(run_mihd("export", grid.name, "--cell", "pca mean gmm", "--png", png, root=root),
                          "--cell", "pca mean gmm", "0: demo pca+texture concat kmeans")
    assert_one_line_error(run_mihd("export", grid.name, "--h5ad", str(out / "missing" / "x.h5ad"), root=root),
                          "--h5ad", "does not exist")
    assert_one_line_error(run_mihd("export", grid.name, "--png", str(out), root=root), "--png", "folder")
    assert_one_line_error(run_mihd("export", grid.name, root=root), "--h5ad", "--png")
    other = tmp_path / "other.h5ad"
    adata = anndata.read_h5ad(demo_h5ad)
    adata.obs_names = [f"X{b}" for b in adata.obs_names]
    adata.write_h5ad(other)
    assert_one_line_error(run_mihd("export", grid.name, "--slice", str(other), "--png", png, "--h5ad", h5ad,
                                   root=root), "spots are not in it", "--slice")
    assert list(out.iterdir()) == []



def test_a_cluster_without_a_domain_never_wears_a_domains_colour():
    """L3 is split between clusters 2 and 3; L4 is left to no cluster: cluster 3 must not look like L4."""
    truth = ["L1"] * 4 + ["L2"] * 4 + ["L3"] * 4 + ["L4"] * 2
    labels = [0] * 4 + [1] * 4 + [2] * 2 + [3] * 2 + [1] * 2
    domains = truth_colours(truth)
    colours = matched_colours(labels, truth, domains)
    assert [colours[c] for c in (0, 1)] == [domains["L1"], domains["L2"]] and colours[2] == domains["L3"]
    assert colours[3] not in domains.values()
