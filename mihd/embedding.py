"""An embedding: the spots x d array, where it came from, and which transforms were applied to it.

Normalising transforms (standardise, L2, PCA alignment, ...) are applied once by the consumer, as one
preprocessing profile; the `transforms` list is the guard against a second normalising profile (the
double-normalisation bug).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .errors import MihdError

if TYPE_CHECKING:
    import numpy as np


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

    def check_profile(self, steps: tuple[str, ...]) -> None:
        """A normalising profile on an already-normalised embedding is the double-normalisation bug."""
        if self.normalised and any(s.split("(")[0] in NORMALISING for s in steps):
            raise MihdError(
                f"{self.label}: refusing to apply {', '.join(steps)} after {', '.join(self.transforms)}; "
                "this embedding is already normalised (double normalisation)"
            )

    def with_profile(self, array: np.ndarray, steps: tuple[str, ...]) -> "Embedding":
        """The embedding after one preprocessing profile (`steps`, applied in order), recorded."""
        import numpy as np

        self.check_profile(steps)
        return replace(self, array=np.ascontiguousarray(array, dtype=np.float32), transforms=self.transforms + tuple(steps))

    def subset(self, keep: np.ndarray) -> "Embedding":
        """The same embedding for the spots where `keep` (a boolean mask) is true."""
        return replace(self, array=self.array[keep], obs_names=self.obs_names[keep])


NORMALISING = frozenset({"standardize", "l2", "pca", "minmax"})
