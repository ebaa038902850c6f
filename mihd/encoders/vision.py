"""Pretrained histology vision encoders, built with timm exactly as their authors publish them.

Weights come from local files only (no machine here reaches a model hub), looked for in this order:
config["weights"] (a file or a folder), $MIHD_WEIGHTS/<name>/, the local Hugging Face cache (offline).
Random weights only when config["random_init"] is true, and the effective config says so.
config["precision"]: "fp32" (default; reproducible) or "bf16" (autocast: several times faster on a GPU,
values differ slightly, so keep such an embedding under its own --cache-name).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MihdError
from .patches import SpotPatches, to_model_input

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")
WEIGHT_GLOBS = ("*.pth", "*.pt")
DROP_PREFIXES = ("module.", "backbone.")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class ModelSpec:
    """One encoder: its timm constructor and kwargs, its input (size, mean, std), where its weights live."""

    name: str
    timm_name: str
    kwargs: Callable[[], dict]  # a function: some kwargs are timm/torch classes, imported only when built
    dim: int
    size: int
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    hf_repo: str | None = None
    ignore_unexpected: tuple = ()  # checkpoint keys the headless model does not have


def _uni2_kwargs() -> dict:
    import timm
    import torch

    return dict(img_size=224, patch_size=14, depth=24, num_heads=24, init_values=1e-5, embed_dim=1536,
                mlp_ratio=2.66667 * 2, num_classes=0, no_embed_class=True, mlp_layer=timm.layers.SwiGLUPacked,
                act_layer=torch.nn.SiLU, reg_tokens=8, dynamic_img_size=True)


MODELS = {
    m.name: m
    for m in (
        ModelSpec("uni2", "vit_giant_patch14_224", _uni2_kwargs, 1536, 224, hf_repo="MahmoodLab/UNI2-h"),
        ModelSpec("uni", "vit_large_patch16_224",
                  lambda: dict(img_size=224, patch_size=16, init_values=1e-5, num_classes=0, dynamic_img_size=True),
                  1024, 224, hf_repo="MahmoodLab/UNI"),
        ModelSpec("hipt", "vit_small_patch16_224", lambda: dict(img_size=256, num_classes=0), 384, 256,
                  mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), ignore_unexpected=("head.",)),
        ModelSpec("resnet50", "resnet50", lambda: dict(num_classes=0), 2048, 224, hf_repo="timm/resnet50.a1_in1k",
                  ignore_unexpected=("fc.",)),
    )
}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise MihdError(f"--precision {precision!r}: unknown; known: {', '.join(PRECISIONS)}")
    return precision


def build_model(name: str):
    """The timm model with random weights (the architecture only)."""
    import timm

    spec = MODELS[name]
    return timm.create_model(spec.timm_name, pretrained=False, **spec.kwargs())


def _weights_in_folder(folder: Path) -> Path | None:
    for fname in WEIGHT_FILES:
        if (folder / fname).is_file():
            return folder / fname
    for pattern in WEIGHT_GLOBS:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    return None


def find_weights(name: str, config: dict) -> tuple[Path, str]:
    """(weights file, where it was found). A missing file is a one-line MihdError listing every place looked."""
    spec = MODELS[name]
    wanted = ", ".join(WEIGHT_FILES + WEIGHT_GLOBS)
    if config.get("weights"):
        path = Path(config["weights"]).expanduser()
        if path.is_file():
            return path, "config"
        found = _weights_in_folder(path) if path.is_dir() else None
        if found is None:
            raise MihdError(f"weights {path}: not a weights file nor a folder holding one of {wanted}")
        return found, "config"
    looked = ["config weights (not set)"]
    root = os.environ.get("MIHD_WEIGHTS")
    if root:
        folder = Path(root).expanduser() / name
        found = _weights_in_folder(folder) if folder.is_dir() else None
        if found is not None:
            return found, "MIHD_WEIGHTS"
        looked.append(f"{folder}/ ({wanted})")
    else:
        looked.append(f"$MIHD_WEIGHTS/{name}/ (MIHD_WEIGHTS not set)")
    if spec.hf_repo:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from huggingface_hub import constants, try_to_load_from_cache

        for fname in WEIGHT_FILES:
            hit = try_to_load_from_cache(spec.hf_repo, fname)
            if isinstance(hit, str):
                return Path(hit), "hf_cache"
        looked.append(f"Hugging Face cache {constants.HF_HUB_CACHE} for {spec.hf_repo} ({', '.join(WEIGHT_FILES)})")
    else:
        looked.append("Hugging Face cache (no published repo for this model)")
    raise MihdError(
        f"vision encoder {name!r}: no weights found; looked in: {'; '.join(looked)}. "
        f"Set config weights=PATH, put the file under $MIHD_WEIGHTS/{name}/, or use --random-init"
    )


def load_state_dict(path: Path) -> dict:
    """A checkpoint's tensors with wrappers removed: DINO's `teacher` (HIPT), `state_dict`/`model`, and the
    `module.`/`backbone.` key prefixes."""
    import argparse

    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:  # tensors only, no code; DINO checkpoints also pickle their argparse.Namespace
            with torch.serialization.safe_globals([argparse.Namespace]):
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors, truncated files: one line for the researcher
        raise MihdError(f"weights {path}: cannot be read ({type(exc).__name__}: {exc})".splitlines()[0]) from exc
    for wrapper in ("teacher", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise MihdError(f"weights {path}: not a state dict")
    clean = {}
    for key, value in state.items():
        for prefix in DROP_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        clean[key] = value
    return clean


def _load_into(model, name: str, path: Path) -> None:
    spec = MODELS[name]
    state = load_state_dict(path)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches: the file is for another architecture
        lines = [ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln] or [str(exc).splitlines()[0]]
        raise MihdError(f"weights {path}: does not fit {spec.timm_name} ({lines[0]})") from exc
    unexpected = [k for k in unexpected if not k.startswith(spec.ignore_unexpected)]
    if missing or unexpected:
        bad = (missing or unexpected)[:3]
        raise MihdError(f"weights {path}: does not fit {spec.timm_name} ({len(missing)} missing, {len(unexpected)} unexpected keys, e.g. {', '.join(bad)})")


def encode_model(name: str, adata, *, variant: str, config: dict, progress=None):
    """Embed every spot's patch with model `name`; returns (float32 n x dim, effective config)."""
    spec = MODELS[name]
    patches = SpotPatches(adata, variant, spec.size)  # a slice without an image fails first, before any weights
    random_init = bool(config.get("random_init", False))
    weights, source = (None, None) if random_init else find_weights(name, config)
    import torch

    try:
        device = torch.device(config.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as exc:
        raise MihdError(f"device {config.get('device')!r}: not a torch device") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MihdError(f"device {config.get('device')!r}: no CUDA GPU is visible to this process")
    precision = check_precision(config.get("precision") or "fp32")
    threads = max(1, min(int(config.get("num_threads", os.cpu_count() or 1)), os.cpu_count() or 1))
    batch_size = int(config.get("batch_size", 32))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if random_init:
            torch.manual_seed(int(config.get("seed", 0)))
        model = build_model(name)
        if weights is not None:
            _load_into(model, name, weights)
        model.eval().to(device)
        out = embed_batches(model, spec, patches.batches(batch_size), len(patches), device, precision, progress)
    finally:
        torch.set_num_threads(previous_threads)
    effective = {"model": name, "timm_name": spec.timm_name, "weights": str(weights) if weights else None,
                 "weights_source": source, "random_init": random_init, "dim": spec.dim, "mean": list(spec.mean),
                 "std": list(spec.std), "batch_size": batch_size, "device": str(device), "num_threads": threads,
                 "precision": precision,
                 **patches.info()}
    if random_init:
        effective["seed"] = int(config.get("seed", 0))
    return out, effective


def embed_batches(model, spec: ModelSpec, batches, n: int, device, precision: str = "fp32", progress=None):
    """The forward pass over patch batches ((b, H, W, 3) in [0, 1]) -> float32 (n, dim); bf16 by autocast."""
    import torch

    out = np.empty((n, spec.dim), dtype=np.float32)
    done = 0
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        for batch in batches:
            x = torch.from_numpy(to_model_input(batch, spec.mean, spec.std)).to(device)
            out[done:done + len(batch)] = model(x).float().cpu().numpy()
            done += len(batch)
            if progress:
                progress(done, n)
    return out


def encode_uni2(adata, *, variant: str, config: dict, progress=None):
    return encode_model("uni2", adata, variant=variant, config=config, progress=progress)


def encode_uni(adata, *, variant: str, config: dict, progress=None):
    return encode_model("uni", adata, variant=variant, config=config, progress=progress)


def encode_hipt(adata, *, variant: str, config: dict, progress=None):
    return encode_model("hipt", adata, variant=variant, config=config, progress=progress)


def encode_resnet50(adata, *, variant: str, config: dict, progress=None):
    return encode_model("resnet50", adata, variant=variant, config=config, progress=progress)
