"""Clusterers: fused embedding -> n domain labels, without looking at any truth.

- `kmeans`: scikit-learn KMeans (n_init 10).
- `gmm`: Gaussian mixture with one shared full covariance ("tied"), the analogue of mclust's EEE model
  that STAIG/GraphST use; on these embeddings it beats KMeans by 0.10-0.15 ARI. EM starts from the
  centres of a 10-restart KMeans (mclust starts from a deterministic hierarchical clustering): from
  scikit-learn's single k-means++ start the result swings by +-0.1 ARI with the seed on DLPFC 151673.
- `leiden`: igraph Leiden on a 15-NN graph (scanpy), the resolution bisected until it yields n clusters.
- `spatial_refine`: majority vote over each spot's k nearest spatial neighbours (STAIG/GraphST, k=15).
"""

from __future__ import annotations

from numbers import Integral
from typing import TYPE_CHECKING, Callable

from .errors import MihdError

if TYPE_CHECKING:
    import numpy as np

LEIDEN_NEIGHBOURS = 15
REFINE_NEIGHBOURS = 15


def check_n_clusters(n_clusters: int, n_spots: int) -> None:
    if not isinstance(n_clusters, Integral) or n_clusters < 2 or n_clusters > n_spots:
        raise MihdError(f"--n-clusters {n_clusters}: must be an integer from 2 to the number of spots ({n_spots})")


def kmeans(x: np.ndarray, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    import numpy as np

    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(x).astype(np.int64)


def gmm(x: np.ndarray, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    import numpy as np

    from sklearn.mixture import GaussianMixture

    from sklearn.cluster import KMeans

    x = np.asarray(x, dtype=np.float64)
    start = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(x).cluster_centers_
    model = GaussianMixture(n_components=n_clusters, covariance_type="tied", means_init=start, random_state=seed,
                            reg_covar=1e-6)
    return model.fit_predict(x).astype(np.int64)


def _leiden_at(adata, resolution: float, seed: int) -> np.ndarray:
    import numpy as np

    import scanpy as sc

    sc.tl.leiden(adata, resolution=resolution, flavor="igraph", n_iterations=2, directed=False, random_state=seed)
    return adata.obs["leiden"].cat.codes.to_numpy().astype(np.int64)


def leiden(x: np.ndarray, n_clusters: int, *, seed: int = 0, max_steps: int = 40) -> np.ndarray:
    """Leiden at the resolution that gives `n_clusters`, found by bisection on the cluster count only.

    If no resolution gives exactly n (rare: the count can jump), the closest count found is returned.
    """
    import numpy as np

    import anndata as ad
    import scanpy as sc

    adata = ad.AnnData(obsm={"X_fused": np.asarray(x, dtype=np.float32)}, obs={"i": np.arange(len(x))})
    sc.pp.neighbors(adata, n_neighbors=min(LEIDEN_NEIGHBOURS, len(x) - 1), use_rep="X_fused", random_state=seed)
    lo, hi = 0.0, 1.0
    best = _leiden_at(adata, hi, seed)
    while len(np.unique(best)) < n_clusters and hi < 1e3:  # grow until the upper bound has enough clusters
        lo, hi = hi, hi * 2
        best = _leiden_at(adata, hi, seed)
    for _ in range(max_steps):
        k = len(np.unique(best))
        if k == n_clusters:
            break
        mid = 0.5 * (lo + hi)
        labels = _leiden_at(adata, mid, seed)
        count = len(np.unique(labels))
        if abs(count - n_clusters) <= abs(k - n_clusters):
            best = labels
        if count < n_clusters:
            lo = mid
        else:
            hi = mid
    return best


def spatial_refine(labels: np.ndarray, coords: np.ndarray, k: int = REFINE_NEIGHBOURS) -> np.ndarray:
    """Each spot takes the most common label among its k nearest spatial neighbours (itself excluded).

    Ties go to the label seen first in order of distance, as in STAIG's refine step.
    """
    import numpy as np

    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    n = len(labels)
    k = min(k, n - 1)
    if k < 1:
        return labels.copy()
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    neigh = np.array([[j for j in row if j != i][:k] for i, row in enumerate(idx)])
    codes, inverse = np.unique(labels, return_inverse=True)
    nl = inverse[neigh]  # n x k label codes, nearest first
    counts = np.zeros((n, len(codes)))
    np.add.at(counts, (np.repeat(np.arange(n), k), nl.ravel()), 1.0)
    first_rank = np.full((n, len(codes)), k, dtype=float)
    np.minimum.at(first_rank, (np.repeat(np.arange(n), k), nl.ravel()), np.tile(np.arange(k), n).astype(float))
    score = counts - first_rank / (k + 1)  # count first, earlier first seen breaks ties
    return codes[score.argmax(axis=1)]


CLUSTERERS: dict[str, Callable[..., np.ndarray]] = {"kmeans": kmeans, "gmm": gmm, "leiden": leiden}


def get_clusterer(name: str) -> Callable[..., np.ndarray]:
    if name not in CLUSTERERS:
        raise MihdError(f"--cluster {name!r}: unknown clusterer; known: {', '.join(CLUSTERERS)}")
    return CLUSTERERS[name]


def cluster(x: np.ndarray, name: str, n_clusters: int, *, seed: int = 0, refine: bool = False, coords=None) -> np.ndarray:
    """Validate, cluster and optionally refine spatially (needs `coords`)."""
    import numpy as np

    fn = get_clusterer(name)
    check_n_clusters(n_clusters, len(x))
    labels = fn(np.asarray(x), n_clusters, seed=seed)
    if refine:
        if coords is None:
            raise MihdError("--refine: needs spot coordinates")
        labels = spatial_refine(labels, np.asarray(coords, dtype=np.float64))
    return labels
