"""Which encoders can compute an embedding here, for the grid: a cell whose input is not cached and whose
encoder has no weights on this machine is `no weights` (it cannot run), never a launch that fails later.
Looks where mihd.encoders looks ($MIHD_WEIGHTS, the local Hugging Face cache) without loading anything."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .cache import GENE_VARIANT
from .encoders import GENE_ENCODERS, VISION_ENCODERS
from .encoders.vision_models import VISION_MODELS
from .plan import Cell

WEIGHTS_TTL = 30.0  # seconds a weights look-up is believed (files dropped in later show up by then)


def _hf_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface" / "hub"


def weights_found(modality: str, name: str) -> bool:
    """Whether `name` can compute an embedding here without being told where its weights are: it needs
    none, or they lie where mihd.encoders looks ($MIHD_WEIGHTS/<name>/, the local Hugging Face cache of
    the model's repository). Names no encoder has (custom cache names) never compute: False."""
    spec = {"gene": GENE_ENCODERS, "vision": VISION_ENCODERS}[modality].get(name)
    if spec is None:
        return False
    if not spec.needs_weights:
        return True
    from .encoders.vision import weights_in_folder  # numpy only; the file names vision.py accepts

    folders = []
    if os.environ.get("MIHD_WEIGHTS"):
        folders.append(Path(os.environ["MIHD_WEIGHTS"]).expanduser() / name)
    model = VISION_MODELS.get(name) if modality == "vision" else None
    if model is not None and model.hf_repo:
        snapshots = _hf_cache() / f"models--{model.hf_repo.replace('/', '--')}" / "snapshots"
        folders += sorted(snapshots.iterdir()) if snapshots.is_dir() else []
    if modality == "gene":  # scgpt: a checkpoint folder
        return any((f / "best_model.pt").is_file() for f in folders)
    return any(f.is_dir() and weights_in_folder(f) is not None for f in folders)


class WeightsCheck:
    """weights_found, remembered for WEIGHTS_TTL seconds (the grid asks on every refresh)."""

    def __init__(self, ttl: float = WEIGHTS_TTL):
        self.ttl, self._seen = ttl, {}

    def __call__(self, modality: str, name: str) -> bool:
        now = time.monotonic()
        got = self._seen.get((modality, name))
        if got is None or now - got[1] > self.ttl:
            got = self._seen[(modality, name)] = (weights_found(modality, name), now)
        return got[0]


def missing_weights(cell: Cell, cached: set, found=weights_found) -> str | None:
    """Why the cell cannot run here ("no weights for uni2"), or None when it can: every input is cached or
    its encoder computes it (needs no weights or has them)."""
    wanted = [("gene", cell.gene, GENE_VARIANT)] + ([("vision", cell.vision, cell.variant)] if cell.vision else [])
    for modality, name, variant in wanted:
        if (cell.slice, modality, name, variant) not in cached and not found(modality, name):
            known = name in (GENE_ENCODERS if modality == "gene" else VISION_ENCODERS)
            return f"no weights for {name}" if known else f"{name} is not cached for {cell.slice}"
    return None
