import dataclasses

import numpy as np
import pytest

from mihd.embedding import Embedding
from mihd.errors import MihdError
from mihd.fusion import FUSIONS, run_cell_arrays
from mihd.fusion import staig_fusion as staig
from mihd.metrics import ari

N_SIDE = 12


def _slice(seed=0):
    """A 12x12 grid of spots in three vertical bands; genes and image both carry the bands, noisily."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.arange(N_SIDE), np.arange(N_SIDE))
    coords = np.c_[xs.ravel(), ys.ravel()].astype(float) * 100.0
    truth = np.minimum(xs.ravel() // 4, 2)
    names = np.array([f"s{i}" for i in range(len(truth))])
    gene = rng.poisson(1.0, (len(truth), 40)).astype(np.float32)
    gene[:, :6] += 3.0 * (truth[:, None] == np.arange(3).repeat(2)[None, :])
    vision = rng.normal(0, 1, (len(truth), 10)).astype(np.float32)
    vision[:, :3] += 5.0 * truth[:, None]
    g = Embedding(gene, {"modality": "gene", "name": "hvg"}, names)
    v = Embedding(vision, {"modality": "vision", "name": "texture"}, names)
    return g, v, coords, truth


FAST = dataclasses.replace(staig.GENE_ONLY, epochs=15)


def test_registry_names_and_unknown_fusion_lists_them():
    assert set(FUSIONS) == {"gene_only", "gene_smooth", "vision_only", "concat", "mean", "attention", "staig_fusion",
                            "graphst", "stagate", "spagcn"}
    g, v, coords, _ = _slice()
    with pytest.raises(MihdError, match="known: gene_only, gene_smooth, vision_only, concat"):
        run_cell_arrays(g, v, coords, fusion="sum", cluster="gmm", n_clusters=3)


def test_fusions_that_need_vision_say_so():
    g, _, coords, _ = _slice()
    with pytest.raises(MihdError, match="--fusion concat: needs a vision embedding"):
        run_cell_arrays(g, None, coords, fusion="concat", cluster="gmm", n_clusters=3)


def test_embeddings_for_different_spot_sets_name_both():
    g, v, coords, _ = _slice()
    other = Embedding(v.array, v.meta, np.array([f"x{i}" for i in range(len(v.obs_names))]))
    with pytest.raises(MihdError, match="gene:hvg .* vision:texture .* different spot sets"):
        run_cell_arrays(g, other, coords, fusion="mean", cluster="gmm", n_clusters=3)


@pytest.mark.parametrize("fusion", ["gene_only", "vision_only", "concat", "mean", "attention"])
def test_block_fusions_find_the_bands(fusion):
    g, v, coords, truth = _slice()
    labels, fused, timings = run_cell_arrays(g, v, coords, fusion=fusion, cluster="kmeans", n_clusters=3, refine=True)
    assert fused.shape[0] == len(truth) and labels.shape == truth.shape
    assert set(timings) == {"fuse", "cluster"}
    assert ari(labels, truth) > 0.5


def test_gene_smooth_recovers_layers_that_per_spot_noise_hides_from_gene_only():
    """Weak layer signal under heavy counting noise: averaging with spatial neighbours brings it out."""
    rng = np.random.default_rng(1)
    side = 24
    xs, ys = np.meshgrid(np.arange(side), np.arange(side))
    coords = np.c_[xs.ravel(), ys.ravel()].astype(float) * 100.0
    truth = xs.ravel() // 6  # four vertical layers
    gene = rng.normal(0, 1, (len(truth), 30)).astype(np.float32)
    gene[:, :4] += 1.5 * (truth[:, None] == np.arange(4)[None, :])
    g = Embedding(gene, {"modality": "gene", "name": "pca"}, np.array([f"s{i}" for i in range(len(truth))]))
    scores = {f: ari(run_cell_arrays(g, None, coords, fusion=f, cluster="gmm", n_clusters=4)[0], truth)
              for f in ("gene_only", "gene_smooth")}
    assert scores["gene_smooth"] > 0.5 and scores["gene_smooth"] > scores["gene_only"] + 0.3, scores


def test_spatial_smooth_averages_each_spot_with_its_six_nearest_neighbours():
    from mihd.fusion.gene_smooth import spatial_smooth

    coords = np.array([[0.0, 0.0]] + [[np.cos(a), np.sin(a)] for a in np.arange(6) * np.pi / 3] + [[9.0, 9.0]])
    x = np.arange(8, dtype=float)[:, None]
    out = spatial_smooth(x, coords)
    assert out[0, 0] == pytest.approx(x[:7].mean())  # the centre and its ring; the far spot is the 8th
    np.testing.assert_allclose(spatial_smooth(np.ones((8, 3)), coords), 1.0)


def test_attention_is_reproducible_with_a_seed():
    g, v, coords, _ = _slice()
    a = run_cell_arrays(g, v, coords, fusion="attention", cluster="kmeans", n_clusters=3, seed=3)[1]
    b = run_cell_arrays(g, v, coords, fusion="attention", cluster="kmeans", n_clusters=3, seed=3)[1]
    np.testing.assert_array_equal(a, b)


def test_spatial_graph_is_symmetric_5nn_without_self_loops():
    _, _, coords, _ = _slice()
    edges = staig.spatial_edges(coords)
    assert (edges[:, 0] < edges[:, 1]).all()  # undirected, no self-loops, no duplicates
    assert len(np.unique(edges, axis=0)) == len(edges)
    degree = np.bincount(edges.ravel(), minlength=len(coords))
    assert degree.min() >= 5


def test_image_drop_probabilities_grow_with_image_distance_and_sum_to_one():
    edges = np.array([[0, 1], [0, 2], [0, 3]])
    image = np.array([[0.0], [1.0], [3.0], [0.0]])
    p = staig.drop_probabilities(edges, image, 4, image=True)
    np.testing.assert_allclose(p, [0.25, 0.75, 0.0])


def test_staig_loss_matches_the_dense_reference():
    """The moment form of the denominator equals STAIG's n x n formulation (float64)."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    n, tau = 80, 34.0
    coords = rng.uniform(0, 100, (n, 2))
    src, dst = (torch.as_tensor(v) for v in staig._directed(staig.spatial_edges(coords)))
    n_pos = torch.as_tensor(2 * np.bincount(src.numpy(), minlength=n) + 1, dtype=torch.float64)
    adj = torch.zeros(n, n, dtype=torch.float64)
    adj[src, dst] = 1
    labels = rng.integers(0, 6, n)
    z1, z2 = (torch.as_tensor(rng.normal(size=(n, 16))) for _ in range(2))

    def dense(a, b, mask):
        a, b = F.normalize(a), F.normalize(b)
        s11, s12 = torch.exp(a @ a.T / tau), torch.exp(a @ b.T / tau)
        pos = s12.diag() + (s11 * adj).sum(1) + (s12 * adj).sum(1)
        return -torch.log(pos / ((s11 * mask).sum(1) + (s12 * mask).sum(1) - s11.diag()) / n_pos)

    for lab in (None, labels):
        mask = torch.ones(n, n, dtype=torch.float64) if lab is None else torch.as_tensor(lab[:, None] != lab[None, :]).double()
        ref = 0.5 * (dense(z1, z2, mask) + dense(z2, z1, mask)).mean()
        groups = None if lab is None else staig._padded_groups(lab)
        ours = staig._loss(z1, z2, src, dst, n_pos, groups, tau)
        assert float(ours) == pytest.approx(float(ref), rel=1e-7)


def test_staig_gene_only_is_reproducible_and_learns_the_bands():
    g, _, coords, truth = _slice()
    a = staig.train(g.array, coords, None, seed=0, settings=dataclasses.replace(FAST, epochs=60))
    b = staig.train(g.array, coords, None, seed=0, settings=dataclasses.replace(FAST, epochs=60))
    assert a.shape == (len(truth), 64)
    np.testing.assert_array_equal(a, b)  # deterministic CPU kernels: the same bits, whatever the threads do
    from mihd.cluster import gmm

    labels = gmm(a, 3)
    assert ari(labels, truth) > 0.3


def test_staig_with_image_runs_through_the_cell_path_and_reports_progress():
    g, v, coords, truth = _slice()
    seen = []
    labels, fused, _ = run_cell_arrays(g, v, coords, fusion="staig_fusion", cluster="gmm", n_clusters=3,
                                       progress=lambda stage, done, total, **f: seen.append((stage, done, total, f)))
    assert fused.shape == (len(truth), 64)
    last_train = [s for s in seen if s[0] == "train"][-1]
    assert last_train[1:3] == (staig.WITH_IMAGE.epochs, staig.WITH_IMAGE.epochs)
    assert last_train[3]["loss"] > 0  # the loss the run log prints
    assert ari(labels, truth) > 0.3


def test_a_methods_own_refinement_follows_its_clusterer_and_comes_before_refine(monkeypatch):
    """GraphST's published pipeline votes each spot's label among its 50 nearest spots after clustering: a method
    with `own_refine` gets that vote on every run, and `--refine`'s 15-NN vote on top when asked."""
    from mihd.cluster import cluster, spatial_refine

    assert FUSIONS["graphst"].own_refine == 50
    _, _, coords, _ = _slice()
    noise = np.random.default_rng(3).normal(0, 1, (len(coords), 20)).astype(np.float32)  # labels a vote changes
    g = Embedding(noise, {"modality": "gene", "name": "pca"}, np.array([f"s{i}" for i in range(len(coords))]))
    monkeypatch.setitem(FUSIONS, "gene_only", dataclasses.replace(FUSIONS["gene_only"], own_refine=9))
    plain = run_cell_arrays(g, None, coords, fusion="gene_only", cluster="kmeans", n_clusters=3)[1]
    raw = cluster(plain, "kmeans", 3)
    voted = run_cell_arrays(g, None, coords, fusion="gene_only", cluster="kmeans", n_clusters=3)[0]
    assert (voted == spatial_refine(raw, coords, k=9)).all() and (voted != raw).any()
    both = run_cell_arrays(g, None, coords, fusion="gene_only", cluster="kmeans", n_clusters=3, refine=True)[0]
    assert (both == spatial_refine(spatial_refine(raw, coords, k=9), coords)).all()
