"""Preprocessing profiles: the normalisation a fusion method needs, declared as data, applied once.

A profile maps a modality to a list of transform specs, e.g. ``("standardize", "pca(16)")``. The
pipeline applies it right after loading the raw (cached) embedding. One profile is one normalisation
step: ``Embedding.with_profile`` refuses a normalising profile on an input that is already normalised
(an alignment done upstream and then repeated by the method: the double-normalisation bug).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .embedding import NORMALISING, Embedding
from .errors import MihdError

if TYPE_CHECKING:
    import numpy as np

PCA_SEED = 42  # STAIG's PCA random_state; fixed so a profile is a pure function of its input

_SPEC = re.compile(r"^(?P<name>[a-z_0-9]+)(?:\((?P<arg>\d+)\))?$")


@dataclass(frozen=True)
class Profile:
    """Transforms per modality; an empty tuple means the raw embedding is used as it is."""

    gene: tuple[str, ...] = ()
    vision: tuple[str, ...] = ()

    def for_modality(self, modality: str) -> tuple[str, ...]:
        return self.gene if modality == "gene" else self.vision


def _standardize(x: np.ndarray, _arg) -> np.ndarray:
    import numpy as np

    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _pca(x: np.ndarray, arg) -> np.ndarray:
    from sklearn.decomposition import PCA

    if arg is None:
        raise MihdError("pca: needs a width, e.g. pca(16)")
    d = min(int(arg), x.shape[0], x.shape[1])
    return PCA(n_components=d, random_state=PCA_SEED).fit_transform(x)


def _l2(x: np.ndarray, _arg) -> np.ndarray:
    import numpy as np

    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _minmax(x: np.ndarray, _arg) -> np.ndarray:
    import numpy as np

    lo, hi = x.min(axis=0), x.max(axis=0)
    return (x - lo) / np.where(hi > lo, hi - lo, 1.0)


TRANSFORMS = {"standardize": _standardize, "pca": _pca, "l2": _l2, "minmax": _minmax}
assert set(TRANSFORMS) <= NORMALISING


def parse(spec: str) -> tuple[str, int | None]:
    m = _SPEC.match(spec.strip())
    if not m or m["name"] not in TRANSFORMS:
        raise MihdError(f"transform {spec!r}: unknown; known: {', '.join(TRANSFORMS)} (pca takes a width: pca(16))")
    return m["name"], (int(m["arg"]) if m["arg"] else None)


def apply_profile(embedding: Embedding, transforms) -> Embedding:
    """Apply `transforms` in order; raises MihdError (before any work) if `embedding` was already normalised."""
    steps = tuple(transforms)
    if not steps:
        return embedding
    import numpy as np

    embedding.check_profile(steps)
    array = np.asarray(embedding.array, dtype=np.float64)
    for spec in steps:
        name, arg = parse(spec)
        array = TRANSFORMS[name](array, arg)
    return embedding.with_profile(array, steps)
