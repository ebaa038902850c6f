"""GraphST (Long et al., Nat. Commun. 2023), run by its maintained package `graphst-modern`.

As in GraphST's 10x Visium DLPFC tutorial: the package's own preprocessing (seurat_v3 HVG 3,000 on raw
counts, normalize_total 1e4, log1p, scale(zero_center=False, max 10)), its 3-NN spatial graph, 600 epochs,
lr 1e-3, 64-d output, seed 41 (+ the run's seed); then, as its `clustering` does before mclust, PCA(20,
random_state 42) of the embedding, which our clusterer (gmm: tied covariance, the mclust EEE analogue) splits.
The one change: the model gets its normalised adjacency (about 7 entries a row) as a sparse tensor, so each
epoch's products with it cost O(edges) instead of O(n^2 x 3,000); the values, and so the model, are the same.
"""

from __future__ import annotations

from .baselines import finite, heard_epochs, quiet, require, slice_counts

EPOCHS = 600
LR = 1e-3  # GraphST's learning_rate default
SEED = 41  # GraphST's random_seed default
PCS = 20


def fuse(gene, vision, ctx):
    require("graphst")
    from sklearn.decomposition import PCA

    from ..compute import torch_device

    adata = slice_counts(ctx, "graphst")
    adata.obsm["spatial"] = ctx.coords
    with quiet(ctx) as progress, torch_device(ctx.device) as dev:
        from GraphST.GraphST import GraphST

        model = GraphST(adata, device=dev, epochs=EPOCHS, learning_rate=LR, random_seed=SEED + ctx.seed)
        model.adj = model.adj.to_sparse()  # the same normalised adjacency; its dense n x n products were 95 % of the time
        with heard_epochs(progress, "graphst", EPOCHS):
            emb = model.train().obsm["emb"]
    return PCA(n_components=min(PCS, *emb.shape), random_state=42).fit_transform(finite(emb, "graphst"))
