"""STAIG: image-aided graph contrastive learning (Hu et al., Nat. Commun. 2025), in plain torch.

- Graph: 5 nearest spatial neighbours on full-resolution coordinates, made symmetric, 0/1 weights.
- Encoder: one GCN layer (self-loops, symmetric normalisation) to 64 + PReLU; projection head
  Linear(64,64)-ELU-Linear(64,64), whose output is both the loss input and the returned embedding.
- Two views per epoch: feature columns masked (0.1 / 0.2 with an image, 0.2 / 0.2 without) and
  undirected edges dropped with probability p_ij. With an image p_ij = d_ij / sum_k d_ik, d the
  distance in the image embedding (StandardScaler -> PCA(16), the method's vision profile); without
  one, a softmax over the neighbours of the cosine distance in a StandardScaler -> PCA(64) of the gene
  input (STAIG's gene-only form).
- Loss: s = exp(cos / tau); positives = the spot in the other view + its graph neighbours in both
  views, divided by their number; denominator = pairs in both views (with an image: only pairs whose
  KMeans(k=80) image pseudo-labels differ) minus the self term; -log, symmetric, mean.
- Settings from STAIG's 151673 configs. Full batch, float32, seeded (STAIG's seed 39788 + the run
  seed). Trains on the device asked for (auto: the GPU when torch sees one) with the threads this
  process may use (mihd.compute); the random masks are drawn on the CPU, so both devices see the same
  views, and the CPU result is the same to the bit for the same seed and allocation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import EARLY_STEPS

STAIG_SEED = 39788
HIDDEN = 64
NEIGHBOURS = 5


@dataclass(frozen=True)
class Settings:
    tau: float
    epochs: int
    lr: float
    weight_decay: float
    feature_mask: tuple[float, float]
    pseudo_k: int | None  # KMeans k for image pseudo-labels; None = every other spot is a negative


WITH_IMAGE = Settings(tau=35.0, epochs=300, lr=5e-4, weight_decay=1e-5, feature_mask=(0.1, 0.2), pseudo_k=80)
GENE_ONLY = Settings(tau=34.0, epochs=340, lr=5e-4, weight_decay=1e-5, feature_mask=(0.2, 0.2), pseudo_k=None)


def spatial_edges(coords: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Undirected edges (i < j) of the symmetric k-NN graph (union of both directions), shape (E, 2)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(coords)
    k = min(k, n - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords)
    # drop self; with duplicate coordinates self may not be in column 0, so keep the first k others
    others = np.array([[j for j in r if j != i][:k] for i, r in enumerate(idx)])
    rows, cols = np.repeat(np.arange(n), k), others.ravel()
    pairs = np.sort(np.stack([rows, cols], axis=1), axis=1)
    return np.unique(pairs, axis=0)


def _directed(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])


def drop_probabilities(edges: np.ndarray, feats: np.ndarray, n: int, *, image: bool) -> np.ndarray:
    """p for each undirected edge (i < j), normalised over the neighbours of i as in STAIG."""
    src, dst = _directed(edges)
    if image:
        d = np.linalg.norm(feats[src] - feats[dst], axis=1)
        w = d
    else:
        unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        w = np.exp(1.0 - (unit[src] * unit[dst]).sum(axis=1))  # softmax numerator of the cosine distance
    total = np.bincount(src, weights=w, minlength=n)
    p = w / np.where(total[src] > 0, total[src], 1.0)
    return p[: len(edges)]  # the first half is (i -> j) with i < j


def gene_edge_features(x: np.ndarray) -> np.ndarray:
    from sklearn.decomposition import PCA

    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return PCA(n_components=min(64, *z.shape), random_state=42).fit_transform(z)


def pseudo_labels(image_emb: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    k = min(k, len(image_emb))
    return KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(image_emb)


def _model(n_features: int):
    import torch
    from torch import nn

    class STAIGNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.empty(n_features, HIDDEN))
            nn.init.xavier_uniform_(self.weight)  # GCNConv's glorot initialisation
            self.bias = nn.Parameter(torch.zeros(HIDDEN))
            self.act = nn.PReLU()
            self.fc1, self.fc2 = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, HIDDEN)

        def forward(self, x, views):
            """views: [(kept feature columns, (src, dst, norm) of the view's graph)]; one output each."""
            w = torch.cat([self.weight * keep.unsqueeze(1) for keep, _ in views], dim=1)
            xw = torch.split(x @ w, HIDDEN, dim=1)  # one matmul for all views == masking x's columns
            out = []
            for part, (_, (src, dst, norm)) in zip(xw, views):
                h = torch.zeros_like(part).index_add_(0, dst, part[src] * norm.unsqueeze(1)) + self.bias
                out.append(self.fc2(torch.nn.functional.elu(self.fc1(self.act(h)))))
            return out

    return STAIGNet()


def _propagation(edges_kept: np.ndarray, n: int, device=None):
    """GCN message lists for one view: both directions + self-loops, weight 1/sqrt(deg_i deg_j)."""
    import torch

    src, dst = _directed(edges_kept)
    src = np.concatenate([src, np.arange(n)])
    dst = np.concatenate([dst, np.arange(n)])
    deg = np.bincount(dst, minlength=n).astype(np.float32)
    norm = 1.0 / np.sqrt(deg[src] * deg[dst])
    return (torch.as_tensor(src, device=device), torch.as_tensor(dst, device=device),
            torch.as_tensor(norm, dtype=torch.float32, device=device))


def _pair_sums(a, ys, scale):
    """sum_j exp(scale * a_i . y_j) over every row y_j of the matrices in `ys`, for unit vectors.

    With STAIG's tau (34-35), |scale * a.y| <= 0.03, so exp is replaced by its second-order Taylor
    series, whose sums over j reduce to the moments sum_j y_j and sum_j y_j y_j^T: O(n d^2) instead of
    n x n matrices. Truncation error <= 0.03^3 / 6 = 4.5e-6 relative per term (see the module docstring).
    """
    count = sum(len(y) for y in ys)
    m1 = sum(y.sum(0) for y in ys)
    m2 = sum(y.T @ y for y in ys)
    return count + scale * (a @ m1) + 0.5 * scale**2 * ((a @ m2) * a).sum(1)


def _group_sums(a, y, groups, scale):
    """sum over j with the same pseudo-label as i of exp(scale * a_i . y_j), exactly (small blocks)."""
    import torch

    index, valid = groups  # (G, m) spot index per group padded, (G, m) bool
    ag, yg = a[index], y[index]  # G x m x d
    e = torch.exp(scale * torch.bmm(ag, yg.transpose(1, 2))) * valid.unsqueeze(1)
    out = torch.zeros(len(a), dtype=a.dtype, device=a.device)
    return out.index_put_((index[valid],), e.sum(2)[valid])


def _loss(z1, z2, pos_src, pos_dst, n_pos, groups, tau):
    """STAIG's neighbour contrastive loss, both directions, mean over spots."""
    import torch
    import torch.nn.functional as F

    a, b = F.normalize(z1), F.normalize(z2)
    scale = 1.0 / tau

    def edge_sum(x, y):  # sum over graph neighbours j of exp(cos(x_i, y_j) / tau), exact
        s = torch.exp(scale * (x[pos_src] * y[pos_dst]).sum(1))
        return torch.zeros(len(x), dtype=x.dtype, device=x.device).index_add_(0, pos_src, s)

    cross_self = torch.exp(scale * (a * b).sum(1))
    self_term = torch.exp(scale * (a * a).sum(1))
    pos1 = cross_self + edge_sum(a, a) + edge_sum(a, b)
    pos2 = cross_self + edge_sum(b, b) + edge_sum(b, a)
    den1 = _pair_sums(a, (a, b), scale) - self_term
    den2 = _pair_sums(b, (a, b), scale) - self_term
    if groups is not None:  # negatives only between different image pseudo-labels
        den1 = den1 - _group_sums(a, a, groups, scale) - _group_sums(a, b, groups, scale)
        den2 = den2 - _group_sums(b, b, groups, scale) - _group_sums(b, a, groups, scale)
    l1 = -torch.log(pos1 / den1 / n_pos)
    l2 = -torch.log(pos2 / den2 / n_pos)
    return 0.5 * (l1 + l2).mean()


def _padded_groups(labels: np.ndarray, device=None):
    import torch

    order = [np.flatnonzero(labels == g) for g in np.unique(labels)]
    width = max(len(o) for o in order)
    index = np.zeros((len(order), width), dtype=np.int64)
    valid = np.zeros((len(order), width), dtype=bool)
    for g, o in enumerate(order):
        index[g, : len(o)], valid[g, : len(o)] = o, True
    return torch.as_tensor(index, device=device), torch.as_tensor(valid, device=device)


def train(gene_x: np.ndarray, coords: np.ndarray, image_emb: np.ndarray | None, *, seed: int = 0,
          settings: Settings | None = None, progress=None, device: str = "auto") -> np.ndarray:
    """Train STAIG on one slice and return the 64-d projection-head embedding (n x 64)."""
    from ..compute import torch_device

    with torch_device(device) as dev:
        return _train(gene_x, coords, image_emb, seed, settings, progress, dev)


def _stepper(progress, stage: str, total: int):
    """A callable that reports the next of `total` steps of `stage` (the first, 0 done, at once)."""
    done = [0]
    if progress:
        progress(stage, 0, total)

    def step():
        done[0] += 1
        if progress:
            progress(stage, done[0], total)
    return step


def _train(gene_x, coords, image_emb, seed, settings, progress, dev) -> np.ndarray:
    import torch

    cfg = settings or (WITH_IMAGE if image_emb is not None else GENE_ONLY)
    n = len(gene_x)
    prepared = _stepper(progress, "prepare", 3)  # graph, edge drop probabilities, pseudo-labels: seconds each
    edges = spatial_edges(np.asarray(coords, dtype=np.float64))
    prepared()
    if image_emb is not None:
        p_drop = drop_probabilities(edges, np.asarray(image_emb, dtype=np.float64), n, image=True)
        prepared()
        labels = pseudo_labels(image_emb, cfg.pseudo_k) if cfg.pseudo_k else None
    else:
        p_drop = drop_probabilities(edges, gene_edge_features(np.asarray(gene_x, dtype=np.float64)), n, image=False)
        prepared()
        labels = None
    prepared()

    gen = torch.Generator().manual_seed(STAIG_SEED + seed)
    torch.manual_seed(STAIG_SEED + seed)
    x = torch.as_tensor(np.asarray(gene_x, dtype=np.float32), device=dev)
    src, dst = _directed(edges)
    pos_src, pos_dst = torch.as_tensor(src, device=dev), torch.as_tensor(dst, device=dev)
    n_pos = torch.as_tensor(2 * np.bincount(src, minlength=n) + 1, dtype=torch.float32, device=dev)
    groups = _padded_groups(labels, dev) if labels is not None else None
    p_t = torch.as_tensor(p_drop, dtype=torch.float32)  # masks are drawn on the CPU generator

    model = _model(x.shape[1]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for epoch in range(cfg.epochs):
        model.train()
        opt.zero_grad()
        views = []
        for rate in cfg.feature_mask:
            kept = edges[(torch.rand(len(edges), generator=gen) >= p_t).numpy()]
            keep = (torch.rand(x.shape[1], generator=gen) >= rate).float().to(dev)
            views.append((keep, _propagation(kept, n, dev)))
        z1, z2 = model(x, views)
        loss = _loss(z1, z2, pos_src, pos_dst, n_pos, groups, cfg.tau)
        loss.backward()
        opt.step()
        if progress and (epoch < EARLY_STEPS or (epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs):
            progress("train", epoch + 1, cfg.epochs, loss=float(loss.detach()))
    model.eval()
    with torch.no_grad():
        (out,) = model(x, [(torch.ones(x.shape[1], device=dev), _propagation(edges, n, dev))])
    return out.cpu().numpy()


def fuse(gene, vision, ctx):
    return train(gene.array, ctx.coords, None if vision is None else vision.array, seed=ctx.seed, progress=ctx.progress,
                 device=ctx.device)
