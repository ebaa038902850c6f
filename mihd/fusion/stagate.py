"""STAGATE (Dong & Zhang, Nat. Commun. 2022), run by its maintained package `stagate-modern` (PyG).

As in STAGATE's 10x Visium DLPFC tutorial: seurat_v3 HVG 3,000 on raw counts, normalize_total 1e4, log1p;
a radius graph of 150 full-resolution pixels (a spot's 6 lattice neighbours), the graph-attention
autoencoder [3000 -> 512 -> 30] trained 1,000 epochs (lr 1e-3, weight decay 1e-4, gradient clipping 5,
seed 0 + the run's seed, alpha 0: no cell-type-aware graph); the 30-d embedding is clustered by our
clusterer (the tutorial's mclust EEE: gmm).
"""

from __future__ import annotations

from .baselines import finite, heard_epochs, quiet, require, slice_counts

EPOCHS = 1000
RADIUS = 150.0  # full-resolution pixels (Visium spots are ~138 px apart)
N_TOP_GENES = 3000


def fuse(gene, vision, ctx):
    require("stagate")
    import scanpy as sc

    from ..compute import torch_device

    adata = slice_counts(ctx, "stagate")
    adata.obsm["spatial"] = ctx.coords
    adata.var_names_make_unique()
    with quiet(ctx) as progress, torch_device(ctx.device) as dev:
        from STAGATE_pyG import Cal_Spatial_Net, train_STAGATE

        sc.pp.highly_variable_genes(adata, flavor="seurat_v3", n_top_genes=min(N_TOP_GENES, adata.n_vars))
        sc.pp.normalize_total(adata, target_sum=1e4)
        sc.pp.log1p(adata)
        Cal_Spatial_Net(adata, rad_cutoff=RADIUS)
        with heard_epochs(progress, "stagate", EPOCHS):
            train_STAGATE(adata, n_epochs=EPOCHS, random_seed=ctx.seed, device=dev)
    return finite(adata.obsm["STAGATE"], "stagate")
