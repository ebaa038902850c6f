"""Gene encoders: `pca`, `hvg` (STAIG's input matrix), `mlp` (seeded autoencoder), `scgpt`.

Defaults (written down, recorded in the cache metadata):
- pca: 3,000 highly variable genes (seurat flavour on log data, capped at the genes present),
  normalize_total to 1e4 (by `obs["sum_umi"]` when the slice carries the true library size, as the
  5,000-gene DLPFC subset does), log1p, scale (max 10), PCA 50 components (arpack, seed 0).
- hvg: seurat_v3 HVG (3,000) on raw counts, normalize_total 1e4, log1p, scale(zero_center=False, max 10).
- mlp: the pca input matrix -> 512 -> 64 -> 512 -> input, ReLU, Adam 1e-3, 200 full-batch epochs, seed 0;
  the 64-d bottleneck is the embedding.
"""

from __future__ import annotations

import numpy as np

from ..errors import MihdError

PCA_DEFAULTS = {"n_top_genes": 3000, "target_sum": 1e4, "max_value": 10.0, "n_comps": 50, "seed": 0}
HVG_DEFAULTS = {"n_top_genes": 3000, "target_sum": 1e4, "max_value": 10.0}
MLP_DEFAULTS = {**PCA_DEFAULTS, "hidden": 512, "latent": 64, "epochs": 200, "lr": 1e-3}


def _normalise_log(adata, target_sum: float):
    """normalize_total + log1p on a copy; uses the true library size when the slice carries one."""
    import scanpy as sc
    import scipy.sparse as sp

    ad = adata.copy()
    ad.X = sp.csr_matrix(ad.X, dtype=np.float32)
    if "sum_umi" in ad.obs:
        scale = target_sum / np.maximum(ad.obs["sum_umi"].to_numpy(dtype=np.float64), 1.0)
        ad.X = sp.csr_matrix(ad.X.multiply(scale[:, None]), dtype=np.float32)
        library = "obs.sum_umi"
    else:
        sc.pp.normalize_total(ad, target_sum=target_sum)
        library = "counts"
    sc.pp.log1p(ad)
    return ad, library


def _scaled_hvg_matrix(adata, config: dict) -> tuple[np.ndarray, dict]:
    import scanpy as sc

    ad, library = _normalise_log(adata, config["target_sum"])
    n_top = min(int(config["n_top_genes"]), ad.n_vars)
    if n_top < ad.n_vars:
        sc.pp.highly_variable_genes(ad, n_top_genes=n_top, flavor="seurat")
        ad = ad[:, ad.var["highly_variable"]].copy()
    ad.X = ad.X.toarray()  # scaling centres the data, which densifies it anyway
    sc.pp.scale(ad, max_value=config["max_value"])
    return np.asarray(ad.X, dtype=np.float32), {"library_size": library, "n_genes_used": int(ad.n_vars)}


def _config(defaults: dict, config: dict | None) -> dict:
    return {**defaults, **{k: v for k, v in (config or {}).items() if k in defaults}}


def encode_pca(adata, *, variant="-", config=None, progress=lambda d, t: None):
    from sklearn.decomposition import PCA

    cfg = _config(PCA_DEFAULTS, config)
    progress(0, 2)
    matrix, info = _scaled_hvg_matrix(adata, cfg)
    progress(1, 2)
    n_comps = min(int(cfg["n_comps"]), min(matrix.shape) - 1)  # arpack needs fewer than min(shape)
    pcs = PCA(n_components=n_comps, svd_solver="arpack", random_state=cfg["seed"]).fit_transform(matrix)
    progress(2, 2)
    return pcs.astype(np.float32), {**cfg, **info, "n_comps": n_comps}


def encode_hvg(adata, *, variant="-", config=None, progress=lambda d, t: None):
    import scanpy as sc

    cfg = _config(HVG_DEFAULTS, config)
    progress(0, 1)
    ad = adata.copy()
    n_top = min(int(cfg["n_top_genes"]), ad.n_vars)
    try:
        sc.pp.highly_variable_genes(ad, n_top_genes=n_top, flavor="seurat_v3")
    except ImportError:
        raise MihdError("--gene hvg: needs the scikit-misc package (pip install scikit-misc)") from None
    ad = ad[:, ad.var["highly_variable"]].copy()
    ad, library = _normalise_log(ad, cfg["target_sum"])
    sc.pp.scale(ad, zero_center=False, max_value=cfg["max_value"])
    progress(1, 1)
    return np.asarray(ad.X.toarray() if hasattr(ad.X, "toarray") else ad.X, dtype=np.float32), {
        **cfg, "library_size": library, "n_genes_used": int(ad.n_vars)}


def encode_mlp(adata, *, variant="-", config=None, progress=lambda d, t: None):
    """A deterministic autoencoder: same seed and thread count (the cores this process may use, recorded
    as "threads") -> identical embedding. Trains on the CPU: it is small."""
    import torch

    from ..compute import torch_device

    cfg = _config(MLP_DEFAULTS, config)
    matrix, info = _scaled_hvg_matrix(adata, cfg)
    with torch_device("cpu"):
        latent, loss = _train_mlp(torch.from_numpy(matrix), cfg, progress)
    return latent.astype(np.float32), {**cfg, **info, "threads": torch.get_num_threads(), "final_loss": loss}


def _train_mlp(x, cfg: dict, progress):
    import torch

    torch.manual_seed(int(cfg["seed"]))
    d = x.shape[1]
    encoder = torch.nn.Sequential(torch.nn.Linear(d, cfg["hidden"]), torch.nn.ReLU(), torch.nn.Linear(cfg["hidden"], cfg["latent"]))
    decoder = torch.nn.Sequential(torch.nn.Linear(cfg["latent"], cfg["hidden"]), torch.nn.ReLU(), torch.nn.Linear(cfg["hidden"], d))
    params = list(encoder.parameters()) + list(decoder.parameters())
    optimiser = torch.optim.Adam(params, lr=float(cfg["lr"]))
    epochs = int(cfg["epochs"])
    for epoch in range(epochs):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(decoder(encoder(x)), x)
        loss.backward()
        optimiser.step()
        progress(epoch + 1, epochs)
    with torch.inference_mode():
        return encoder(x).numpy(), float(loss.item())


def encode_scgpt(adata, *, variant="-", config=None, progress=lambda d, t: None):
    """scGPT cell embeddings from a local checkpoint folder (args.json, best_model.pt, vocab.json)."""
    import os
    from pathlib import Path

    try:
        from scgpt.tasks import embed_data
    except Exception:  # scgpt pulls in optional heavy deps; any import failure means "not usable"
        raise MihdError("--gene scgpt: the scgpt package is not installed or not importable (pip install scgpt)") from None
    candidates = [Path(p) for p in ((config or {}).get("checkpoint"),) if p]
    if os.environ.get("MIHD_WEIGHTS"):
        candidates.append(Path(os.environ["MIHD_WEIGHTS"]) / "scgpt")
    found = next((c for c in candidates if (c / "best_model.pt").is_file() and (c / "vocab.json").is_file()), None)
    if found is None:
        looked = ", ".join(map(str, candidates)) or "no checkpoint given and $MIHD_WEIGHTS unset"
        raise MihdError(f"--gene scgpt: no checkpoint (best_model.pt + vocab.json + args.json); looked in: {looked}")
    ad = adata.copy()
    gene_col = "gene_symbol" if "gene_symbol" in ad.var else "index"
    embedded = embed_data(ad, found, gene_col=gene_col, batch_size=int((config or {}).get("batch_size", 64)), return_new_adata=True)
    progress(1, 1)
    return np.asarray(embedded.X, dtype=np.float32), {"checkpoint": str(found), "gene_col": gene_col}
