"""Attention fusion: learned per-spot modality weights.

Each modality is projected to a shared width; a small scorer gives every spot a softmax weight per
modality; the weighted sum is the fused embedding. Trained without labels as an autoencoder: the fused
vector must reconstruct both (standardised) inputs, so a spot leans on the modality that explains it.
Full batch, seeded; on the device and threads mihd.compute gives (bit-identical on the CPU for a seed).
"""

from __future__ import annotations

import numpy as np

from . import EARLY_STEPS

WIDTH = 32
EPOCHS = 300
LR = 1e-2


def _model(dg: int, dv: int):
    import torch
    from torch import nn

    class AttentionFusion(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.ModuleList([nn.Linear(dg, WIDTH), nn.Linear(dv, WIDTH)])
            self.score = nn.Sequential(nn.Linear(WIDTH, 16), nn.Tanh(), nn.Linear(16, 1, bias=False))
            self.dec = nn.ModuleList([nn.Linear(WIDTH, dg), nn.Linear(WIDTH, dv)])

        def forward(self, g, v):
            h = torch.stack([self.proj[0](g), self.proj[1](v)], dim=1)  # n x 2 x W
            w = torch.softmax(self.score(torch.tanh(h)).squeeze(-1), dim=1)  # n x 2
            z = (w.unsqueeze(-1) * h).sum(dim=1)
            return z, w

        def loss(self, g, v):
            z, _ = self(g, v)
            return ((self.dec[0](z) - g) ** 2).mean() + ((self.dec[1](z) - v) ** 2).mean()

    return AttentionFusion()


def fuse(gene, vision, ctx):
    from ..compute import torch_device

    with torch_device(ctx.device) as dev:
        return _train(gene.array, vision.array, ctx, dev)


def _train(gene, vision, ctx, dev) -> np.ndarray:
    import torch

    torch.manual_seed(ctx.seed)
    g = torch.as_tensor(np.asarray(gene, dtype=np.float32), device=dev)
    v = torch.as_tensor(np.asarray(vision, dtype=np.float32), device=dev)
    model = _model(g.shape[1], v.shape[1]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for epoch in range(EPOCHS):
        opt.zero_grad()
        loss = model.loss(g, v)
        loss.backward()
        opt.step()
        if epoch < EARLY_STEPS or (epoch + 1) % 50 == 0:
            ctx.progress("train", epoch + 1, EPOCHS, loss=float(loss.detach()))
    with torch.no_grad():
        z, _ = model(g, v)
    return z.cpu().numpy()
