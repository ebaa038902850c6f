"""What the published baselines (graphst, stagate, spagcn) share: each is run by its own maintained package
(graphst-modern, stagate-modern, spagcn-modern, the optional `baselines` extra), imported only inside the
function that runs it, so nothing light (the dashboard, the grid) pays for torch_geometric or numba.

- `missing(fusion)`: why a baseline cannot run here (its package is not installed, with the install line),
  found without importing it; the grid shows such a cell as `⊘` with this line.
- `slice_counts(ctx, fusion)`: the slice's raw counts as an AnnData of the scored spots (the packages do
  their own preprocessing, as in their DLPFC tutorials).
- `heard_epochs(progress, fusion, total)`: the package's training loop heard without touching its code: every
  one of its epochs is one full-batch optimizer step, so a global optimizer step hook counts them into
  `ctx.progress("train", ...)` (ETA, run.log) and stops a training whose weights turned NaN in one line.
- `quiet(ctx)`: the packages print and draw tqdm bars per epoch; run.log gets our stage lines instead.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys

from ..errors import MihdError

INSTALL = "pip install -e '.[baselines]'"
# fusion -> (module the package installs, its distribution name on PyPI)
PACKAGES = {"graphst": ("GraphST", "graphst-modern"), "stagate": ("STAGATE_pyG", "stagate-modern"),
            "spagcn": ("SpaGCN", "spagcn-modern")}
EVERY = 10  # epochs between progress events (a NaN check runs after every epoch)


def missing(fusion: str) -> str | None:
    """`graphst-modern is not installed: pip install -e '.[baselines]'`, or None (or not a baseline)."""
    if fusion not in PACKAGES:
        return None
    module, dist = PACKAGES[fusion]
    return None if _installed(module, tuple(sys.meta_path), tuple(sys.path)) else f"{dist} is not installed: {INSTALL}"


@functools.lru_cache(maxsize=64)
def _installed(module: str, meta_path: tuple, path: tuple) -> bool:
    """Whether `module` can be imported, asked once per process and import set-up: a find_spec walks every
    sys.path folder, and the dashboard's grid asks for each baseline row at every refresh. A package
    installed while a dashboard is open is seen after its restart."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(fusion: str) -> None:
    why = missing(fusion)
    if why:
        raise MihdError(f"--fusion {fusion}: {why}")


def slice_counts(ctx, fusion: str):
    """A copy of the scored spots' AnnData (raw counts in X, obsm["spatial"] full-res, uns["spatial"])."""
    if ctx.adata is None:
        raise MihdError(f"--fusion {fusion}: needs the slice's counts (run it through mihd run/grid)")
    return ctx.adata.copy()


@contextlib.contextmanager
def quiet(ctx):
    """The package's prints and tqdm bars kept out of run.log; yields ctx.progress, which still reaches it."""
    err = sys.stderr

    def progress(stage: str, done: int, total: int, **fields) -> None:
        with contextlib.redirect_stderr(err):
            ctx.progress(stage, done, total, **fields)

    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield progress


@contextlib.contextmanager
def heard_epochs(progress, fusion: str, total: int):
    """Count the optimizer steps taken inside the block as epochs of `total` into `progress("train", ...)`;
    a step that leaves a non-finite weight fails the cell (`training diverged at epoch 12 of 600`)."""
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    done = 0

    def hook(optimizer, args, kwargs):
        nonlocal done
        done += 1
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if not all(bool(torch.isfinite(p).all()) for p in params):
            raise MihdError(f"--fusion {fusion}: training diverged at epoch {done} of {total} (NaN in its weights)")
        if done % EVERY == 0 or done == total:
            progress("train", min(done, total), total)

    handle = register_optimizer_step_post_hook(hook)
    progress("train", 0, total)
    try:
        yield
    finally:
        handle.remove()


def finite(array, fusion: str):
    """The package's output, refused in one line when it holds NaN (a training that diverged late)."""
    import numpy as np

    array = np.asarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise MihdError(f"--fusion {fusion}: training diverged (NaN in its embedding)")
    return array
