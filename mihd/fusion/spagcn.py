"""SpaGCN (Hu et al., Nat. Methods 2021), run by its maintained package `spagcn-modern`: the multimodal
baseline, whose graph weighs spots by distance in (x, y, histology colour).

As in SpaGCN's DLPFC 151673 tutorial: colour = the mean RGB of a beta = 49 full-resolution-pixel square
around each spot, in whichever H&E image the slice has (our copies: the 600x600 low-res one, so the square
and the coordinates are scaled by its scale factor), weighted by channel variance, scaled by alpha = 1;
genes filtered (min 3 spots, no ERCC/MT-), normalize_per_cell, log1p, PCA(50); length scale l for
p = 0.5; the Louvain resolution searched for the n clusters asked (start 0.7, step 0.1, 20 epochs);
then 200 epochs (lr 0.05, tol 5e-3; seeds 100 + the run's seed), and SpaGCN's hexagon refinement.

SpaGCN assigns the domains itself (its DEC clustering head): the cell returns its soft assignments and
labels, and the clusterer is not used. The package trains on the CPU only.
"""

from __future__ import annotations

import numpy as np

from ..errors import MihdError
from .baselines import finite, heard_epochs, quiet, require, slice_counts

BETA, ALPHA, P = 49, 1, 0.5
EPOCHS, LR, TOL = 200, 0.05, 5e-3
SEED = 100  # the tutorial's r_seed = t_seed = n_seed


def histology(adata, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The slice's image, each spot's (row, col) pixel in it, and beta in its pixels; one line when none."""
    from ..encoders.patches import best_image

    try:
        image, scale, _ = best_image(adata)
    except MihdError:
        name = adata.uns.get("mihd", {}).get("slice_id", "this slice")
        raise MihdError(f"--fusion spagcn: slice {name} has no H&E image; spagcn needs one (spatial/tissue_lowres_image.png "
                        "or hires, with scalefactors_json.json)") from None
    rows = np.clip(np.round(coords[:, 1] * scale).astype(int), 0, image.shape[0] - 1)
    cols = np.clip(np.round(coords[:, 0] * scale).astype(int), 0, image.shape[1] - 1)
    return image, rows, cols, max(1, int(round(BETA * scale)))


def fuse(gene, vision, ctx):
    require("spagcn")
    import random

    import scanpy as sc
    import torch

    adata = slice_counts(ctx, "spagcn")
    image, rows, cols, beta = histology(adata, ctx.coords)
    if "gene_symbol" in adata.var:  # prefilter_specialgenes reads MT- / ERCC from the names
        adata.var_names = adata.var["gene_symbol"].astype(str).to_numpy()
    adata.var_names_make_unique()
    x, y = ctx.coords[:, 1].astype(np.float64), ctx.coords[:, 0].astype(np.float64)
    with quiet(ctx) as progress:
        import SpaGCN as spg

        progress("graph", 0, 1)
        adj = spg.calculate_adj_matrix(x=x.tolist(), y=y.tolist(), x_pixel=rows.tolist(), y_pixel=cols.tolist(),
                                       image=image, beta=beta, alpha=ALPHA, histology=True)
        spg.prefilter_genes(adata, min_cells=3)
        spg.prefilter_specialgenes(adata)
        sc.pp.normalize_total(adata)  # normalize_per_cell's successor: to the median library size
        sc.pp.log1p(adata)
        l = spg.search_l(P, adj, start=0.01, end=1000, tol=0.01, max_run=100)
        progress("graph", 1, 1)
        seed = SEED + ctx.seed
        progress("search", 0, 1)
        res = spg.search_res(adata, adj, l, ctx.n_clusters, start=0.7, step=0.1, tol=TOL, lr=LR, max_epochs=20,
                             r_seed=seed, t_seed=seed, n_seed=seed)
        progress("search", 1, 1)
        clf = spg.SpaGCN()
        clf.set_l(l)
        random.seed(seed)
        torch.manual_seed(seed)
        np.random.seed(seed)
        with heard_epochs(progress, "spagcn", EPOCHS):
            clf.train(adata, adj, init_spa=True, init="louvain", res=res, tol=TOL, lr=LR, max_epochs=EPOCHS)
        pred, prob = clf.predict()
        grid = spg.calculate_adj_matrix(x=adata.obs["array_row"].tolist(), y=adata.obs["array_col"].tolist(),
                                        histology=False) if "array_row" in adata.obs else \
            spg.calculate_adj_matrix(x=x.tolist(), y=y.tolist(), histology=False)
        ids = [str(i) for i in range(adata.n_obs)]
        refined = spg.refine(sample_id=ids, pred=pred.tolist(), dis=grid, shape="hexagon")
    return finite(prob, "spagcn"), np.asarray(refined, dtype=np.int64)
