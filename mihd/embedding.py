"""An embedding: the spots x d array, where it came from, and which transforms were applied to it.

Normalising transforms (standardise, L2, PCA alignment, ...) are applied once by the consumer; the
`transforms` list is the guard against applying one twice (the double-normalisation bug).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .errors import MihdError


@dataclass(frozen=True)
class Embedding:
    array: np.ndarray
    meta: dict
    obs_names: np.ndarray
    transforms: tuple[str, ...] = field(default=())

    @property
    def label(self) -> str:
        m = self.meta
        variant = m.get("variant")
        return f"{m.get('modality', '?')}:{m.get('name', '?')}" + (f"[{variant}]" if variant and variant != "-" else "")

    @property
    def normalised(self) -> bool:
        return any(t.split("(")[0] in NORMALISING for t in self.transforms)

    def with_array(self, array: np.ndarray, transform: str) -> "Embedding":
        """A new embedding with `transform` recorded. A second normalising transform is an error."""
        kind = transform.split("(")[0]
        if kind in NORMALISING and self.normalised:
            raise MihdError(
                f"{self.label}: refusing to apply {transform} after {', '.join(self.transforms)}; "
                "this embedding is already normalised (double normalisation)"
            )
        return replace(self, array=np.ascontiguousarray(array, dtype=np.float32), transforms=self.transforms + (transform,))


NORMALISING = frozenset({"standardize", "l2", "pca", "minmax"})
