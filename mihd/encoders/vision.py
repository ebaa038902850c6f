"""Pretrained histology vision encoders, built with timm exactly as their authors publish them.

Each model is one table in vision_models.py; this module builds it and runs it.
Weights come from local files only (no machine here reaches a model hub), looked for in this order:
config["weights"] (a file or a folder), $MIHD_WEIGHTS/<name>/, the local Hugging Face cache (offline).
Random weights only when config["random_init"] is true, and the effective config says so.
config["precision"]: "fp32" (default; reproducible) or "bf16" (autocast: several times faster on a GPU,
values differ slightly, so keep such an embedding under its own --cache-name). config["device"]: auto
(default: the GPU when torch sees one), cpu or cuda; CPU threads are the cores this process may use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..data.sources import looks_like
from ..errors import MihdError
from .patches import SpotPatches, to_model_input
from .vision_models import VISION_MODELS, VisionModel

WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")
WEIGHT_GLOBS = ("*.pth", "*.pt")
WANTED = ", ".join(WEIGHT_FILES + WEIGHT_GLOBS)
DROP_PREFIXES = ("module.", "backbone.")
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise MihdError(f"--precision {precision!r}: unknown; known: {', '.join(PRECISIONS)}")
    return precision


def build_model(name: str):
    """The timm model with random weights (the architecture only)."""
    import timm

    spec = VISION_MODELS[name]
    return timm.create_model(spec.timm_name, pretrained=False, **spec.timm_kwargs())


def weights_in_folder(folder: Path) -> Path | None:
    """The first weights file of a known name in `folder` (also how the grid tells a runnable encoder)."""
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
    spec = VISION_MODELS[name]
    if config.get("weights"):
        return check_weights(config["weights"], "weights"), "config"
    looked = ["config weights (not set)"]
    root = os.environ.get("MIHD_WEIGHTS")
    if root:
        folder = Path(root).expanduser() / name
        found = weights_in_folder(folder) if folder.is_dir() else None
        if found is not None:
            return found, "MIHD_WEIGHTS"
        looked.append(f"{folder}/ ({WANTED})")
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


def check_weights(path: str | Path, what: str = "--weights") -> Path:
    """The checkpoint `path` names (a file, or a folder holding one), told by its first bytes, so a wrong file
    is a one-line MihdError before any slice loads."""
    path = Path(path).expanduser()
    found = path if path.is_file() else weights_in_folder(path) if path.is_dir() else None
    if found is None:
        raise MihdError(f"{what} {path}: not a weights file nor a folder holding one of {WANTED}")
    try:
        kind = checkpoint_kind(found)
    except OSError as exc:
        raise MihdError(f"{what} {found}: cannot be read ({exc.strerror})") from None
    if kind is None:
        raise MihdError(f"{what} {found}: not a torch or safetensors checkpoint ({looks_like(found)})")
    return found


def checkpoint_kind(path: Path) -> str | None:
    """"safetensors" or "torch" (torch.save's zip, or a legacy pickle) by the file's first bytes, else None."""
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # zip archive / pickle protocol >= 2
        return "torch"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1:  # u64 header size + JSON
        return "safetensors"
    return None


def load_state_dict(path: Path) -> dict:
    """A checkpoint's tensors with wrappers removed: DINO's `teacher` (HIPT), `state_dict`/`model`, and the
    `module.`/`backbone.` key prefixes."""
    import argparse

    import torch

    kind = checkpoint_kind(path)
    if kind is None:
        raise MihdError(f"weights {path}: not a torch or safetensors checkpoint ({looks_like(path)})")
    try:
        if kind == "safetensors":
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
    spec = VISION_MODELS[name]
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
    """Embed every spot's patch with model `name` (a vision_models table); returns (float32 n x dim,
    effective config)."""
    from ..compute import check_device, configure_torch, torch_device

    spec = VISION_MODELS[name]
    patches = SpotPatches(adata, variant, spec.size)  # a slice without an image fails first, before any weights
    check_device(config.get("device") or "auto")
    precision = check_precision(config.get("precision") or "fp32")
    random_init = bool(config.get("random_init", False))
    weights, source = (None, None) if random_init else find_weights(name, config)
    batch_size = int(config.get("batch_size", 32))
    import torch

    with torch_device(config.get("device") or "auto") as device:
        if random_init:
            torch.manual_seed(int(config.get("seed", 0)))
        model = build_model(name)
        if weights is not None:
            _load_into(model, name, weights)
        model.eval().to(device)
        out = embed_batches(model, spec, patches.batches(batch_size), len(patches), device, precision, progress)
    threads = configure_torch()
    effective = {"model": name, "timm_name": spec.timm_name, "weights": str(weights) if weights else None,
                 "weights_source": source, "random_init": random_init, "dim": spec.dim, "mean": list(spec.mean),
                 "std": list(spec.std), "batch_size": batch_size, "device": str(device), "num_threads": threads,
                 "precision": precision,
                 **patches.info()}
    if random_init:
        effective["seed"] = int(config.get("seed", 0))
    return out, effective


def embed_batches(model, spec: VisionModel, batches, n: int, device, precision: str = "fp32", progress=None):
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
