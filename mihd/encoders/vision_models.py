"""The pretrained vision encoders, one table each: everything that defines a model, as plain data.

The encoder registry (names, descriptions: read by the dashboard, so this module imports nothing heavy)
and the timm builder in vision.py are both made from this table. To add a model, add one entry here.

- `timm_name` + `kwargs`: the exact `timm.create_model(timm_name, pretrained=False, **kwargs)` call. A
  kwarg that is a class is written `Ref("module.Class")` and imported only when the model is built.
- `dim`: the embedding width; `size`: the input patch side in pixels; `mean`/`std`: input normalisation.
- Weights are looked for in config weights=PATH, `$MIHD_WEIGHTS/<name>/`, then the local Hugging Face
  cache of `hf_repo` (None: no published repository). `ignore_unexpected`: checkpoint key prefixes the
  headless model has no use for (a classifier head).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Ref:
    """A class named by its import path, resolved when the model is built (keeps this table torch-free)."""

    path: str

    def resolve(self):
        module, _, name = self.path.rpartition(".")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class VisionModel:
    name: str
    description: str
    timm_name: str
    kwargs: dict
    dim: int
    size: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    hf_repo: str | None = None
    ignore_unexpected: tuple = ()

    def timm_kwargs(self) -> dict:
        return {k: v.resolve() if isinstance(v, Ref) else v for k, v in self.kwargs.items()}


VISION_MODELS = {
    m.name: m
    for m in (
        VisionModel(
            "uni2", "UNI2-h ViT-H/14, 8 register tokens, SwiGLU (1536-d)", "vit_giant_patch14_224",
            dict(img_size=224, patch_size=14, depth=24, num_heads=24, init_values=1e-5, embed_dim=1536,
                 mlp_ratio=2.66667 * 2, num_classes=0, no_embed_class=True, mlp_layer=Ref("timm.layers.SwiGLUPacked"),
                 act_layer=Ref("torch.nn.SiLU"), reg_tokens=8, dynamic_img_size=True),
            dim=1536, size=224, hf_repo="MahmoodLab/UNI2-h",
        ),
        VisionModel(
            "uni", "UNI ViT-L/16 (1024-d)", "vit_large_patch16_224",
            dict(img_size=224, patch_size=16, init_values=1e-5, num_classes=0, dynamic_img_size=True),
            dim=1024, size=224, hf_repo="MahmoodLab/UNI",
        ),
        VisionModel(
            "hipt", "HIPT ViT-S/16 DINO at 256 px (384-d)", "vit_small_patch16_224",
            dict(img_size=256, num_classes=0),
            dim=384, size=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), ignore_unexpected=("head.",),
        ),
        VisionModel(
            "resnet50", "timm ResNet-50 (2048-d)", "resnet50",
            dict(num_classes=0),
            dim=2048, size=224, hf_repo="timm/resnet50.a1_in1k", ignore_unexpected=("fc.",),
        ),
    )
}
