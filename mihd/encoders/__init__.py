"""The encoder registry: names -> where the encode function lives (imported only when used).

An encode function has the signature
    encode(adata, *, variant: str, config: dict, progress: Callable[[int, int], None]) -> (array, config)
and returns the raw spots x d embedding plus its effective configuration (what is recorded in the cache
metadata: resolved weights path, batch size, random_init, ...). Gene encoders get variant "-".
The pretrained vision encoders come from their tables in vision_models.py, all served by
`vision.encode_model` with the model's name bound.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial

from ..errors import MihdError
from .vision_models import VISION_MODELS


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    modality: str
    module: str
    function: str
    needs_weights: bool
    description: str
    model: str | None = None  # passed as the first argument (a vision_models table name)

    def load(self):
        fn = getattr(importlib.import_module(self.module, __name__), self.function)
        return partial(fn, self.model) if self.model else fn


VARIANTS = ("standard", "freq", "staig_strict")

GENE_ENCODERS = {
    s.name: s
    for s in (
        EncoderSpec("pca", "gene", ".gene", "encode_pca", False, "HVG, normalize_total, log1p, scale, PCA (scanpy)"),
        EncoderSpec("hvg", "gene", ".gene", "encode_hvg", False, "STAIG's gene input: 3,000 HVG, normalised, log1p, scaled (no PCA)"),
        EncoderSpec("mlp", "gene", ".gene", "encode_mlp", False, "seeded torch autoencoder on the PCA input"),
        EncoderSpec("scgpt", "gene", ".gene", "encode_scgpt", True, "scGPT cell embeddings (scgpt package + local checkpoint)"),
    )
}

VISION_ENCODERS = {
    **{m.name: EncoderSpec(m.name, "vision", ".vision", "encode_model", True, m.description, model=m.name)
       for m in VISION_MODELS.values()},
    "texture": EncoderSpec("texture", "vision", ".handcrafted", "encode_texture", False,
                           "weight-free colour and texture statistics of the patch"),
}

REGISTRY = {"gene": GENE_ENCODERS, "vision": VISION_ENCODERS}


def get_encoder(modality: str, name: str) -> EncoderSpec:
    known = REGISTRY.get(modality)
    if known is None:
        raise MihdError(f"modality {modality!r}: expected gene or vision")
    if name not in known:
        flag = "--gene" if modality == "gene" else "--vision"
        raise MihdError(f"{flag} {name!r}: unknown {modality} encoder; known: {', '.join(known)}")
    return known[name]


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise MihdError(f"--variant {variant!r}: unknown patch variant; known: {', '.join(VARIANTS)}")
    return variant
