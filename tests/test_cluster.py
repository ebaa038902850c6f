import numpy as np
import pytest

from mihd.cluster import CLUSTERERS, cluster, spatial_refine
from mihd.errors import MihdError
from mihd.metrics import ari, nmi


def _blobs(n_per=40, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (k, 5))
    x = np.vstack([c + rng.normal(0, 0.5, (n_per, 5)) for c in centres])
    return x, np.repeat(np.arange(k), n_per)


@pytest.mark.parametrize("name", sorted(CLUSTERERS))
def test_each_clusterer_finds_separated_groups_with_exactly_n_clusters(name):
    x, truth = _blobs()
    labels = cluster(x, name, 4, seed=0)
    assert len(np.unique(labels)) == 4
    assert ari(labels, truth) == pytest.approx(1.0)


def test_unknown_clusterer_lists_the_known_ones():
    with pytest.raises(MihdError, match="known: kmeans, gmm, leiden"):
        cluster(np.zeros((10, 2)), "dbscan", 2)


@pytest.mark.parametrize("k", [1, 0, 11])
def test_n_clusters_out_of_range(k):
    with pytest.raises(MihdError, match="--n-clusters"):
        cluster(np.random.default_rng(0).normal(size=(10, 2)), "kmeans", k)


def test_spatial_refine_removes_an_isolated_spot_and_keeps_boundaries():
    xs, ys = np.meshgrid(np.arange(10), np.arange(10))
    coords = np.c_[xs.ravel(), ys.ravel()].astype(float)
    labels = (coords[:, 0] >= 5).astype(int)
    noisy = labels.copy()
    noisy[22] = 1  # a lone spot inside the left domain
    refined = spatial_refine(noisy, coords, k=8)
    assert refined[22] == 0
    assert (refined == labels).mean() > 0.95


def test_metrics_leave_unlabelled_spots_out():
    labels = np.array([0, 0, 1, 1, 2, 2])
    truth = np.array(["a", "a", "b", "b", None, np.nan], dtype=object)
    assert ari(labels, truth) == pytest.approx(1.0)
    assert nmi(labels, truth) == pytest.approx(1.0)
    assert ari(labels, [None] * 6) is None and ari(labels, None) is None
