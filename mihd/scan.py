"""SCAN refinement of a (frozen) vision embedding (Van Gansbeke et al. 2020).

Neighbours: the k=20 nearest by inner product of the L2-normalised embedding (the anchor may be its own
neighbour). Several linear heads Linear(dim, n_clusters) are trained with the SCAN loss
-log <p(anchor), p(neighbour)> - 5 * H(mean p); the head with the lowest final loss is kept.

Returned: the kept head's pre-softmax output (logits), n x n_clusters. The softmax saturates towards
one-hot vectors, which leaves a tied-covariance GMM or KMeans nearly degenerate input; the logits keep
the head's geometry (argmax is the same cluster) and are still a plain embedding for any fusion.

Trains on the device asked for (auto: the GPU when torch sees one) with the threads mihd.compute gives;
batches and neighbour picks come from a CPU generator, so a seed draws the same ones on either device.
"""

from __future__ import annotations

import numpy as np

from .errors import MihdError

K_NEIGHBOURS = 20
ENTROPY_WEIGHT = 5.0
HEADS = 5
EPOCHS = 60
BATCH = 256
LR = 5e-3


def mine_neighbours(x: np.ndarray, k: int = K_NEIGHBOURS) -> np.ndarray:
    """Indices (n x k) of the top-k inner products of the L2-normalised rows (self included)."""
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(x))
    out = np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), 1024):  # blocks keep memory at 1024 x n
        sims = unit[start : start + 1024] @ unit.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 1024] = np.take_along_axis(top, order, axis=1)
    return out


def scan_loss(anchor_logits, neighbour_logits, entropy_weight: float = ENTROPY_WEIGHT):
    import torch

    pa, pn = torch.softmax(anchor_logits, dim=1), torch.softmax(neighbour_logits, dim=1)
    consistency = -torch.log((pa * pn).sum(1).clamp_min(1e-8)).mean()
    mean_p = pa.mean(0)
    entropy = -(mean_p * torch.log(mean_p.clamp_min(1e-8))).sum()
    return consistency - entropy_weight * entropy


def scan_refine(x: np.ndarray, n_clusters: int, *, k: int = K_NEIGHBOURS, heads: int = HEADS,
                epochs: int = EPOCHS, seed: int = 0, progress=None, device: str = "auto") -> np.ndarray:
    """Train SCAN heads on the frozen embedding `x`; return the best head's logits (n x n_clusters)."""
    from .compute import torch_device

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise MihdError(f"scan: expected a spots x d embedding with at least 2 spots, got shape {x.shape}")
    if not 2 <= n_clusters <= len(x):
        raise MihdError(f"--n-clusters {n_clusters}: must be from 2 to the number of spots ({len(x)})")
    with torch_device(device) as dev:
        return _train(x, n_clusters, k, heads, epochs, seed, progress, dev)


def _train(x, n_clusters, k, heads, epochs, seed, progress, dev) -> np.ndarray:
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    neigh = torch.as_tensor(mine_neighbours(x, k))  # stays on the CPU: picks are drawn there
    mu, sd = x.mean(0), x.std(0)
    xt = torch.as_tensor((x - mu) / np.where(sd > 0, sd, 1.0), device=dev)
    models = [torch.nn.Linear(x.shape[1], n_clusters).to(dev) for _ in range(heads)]
    opts = [torch.optim.Adam(m.parameters(), lr=LR, weight_decay=1e-4) for m in models]
    n = len(x)
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, BATCH):
            idx = perm[start : start + BATCH]
            pick = neigh[idx, torch.randint(neigh.shape[1], (len(idx),), generator=gen)].to(dev)
            idx = idx.to(dev)
            for model, opt in zip(models, opts):
                opt.zero_grad()
                scan_loss(model(xt[idx]), model(xt[pick])).backward()
                opt.step()
        if progress:
            progress("scan", epoch + 1, epochs)
    with torch.no_grad():
        full_pick = neigh[torch.arange(n), torch.randint(neigh.shape[1], (n,), generator=gen)].to(dev)
        losses = [float(scan_loss(m(xt), m(xt[full_pick]))) for m in models]
        best = models[int(np.argmin(losses))]
        return best(xt).cpu().numpy()
