"""Shared arithmetic for the block fusions: give each modality the same total variance."""

from __future__ import annotations

import numpy as np


def unit_block(x: np.ndarray) -> np.ndarray:
    """Centre `x` and scale it to total variance 1, so no modality outweighs the other by its width."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    total = np.sqrt((x**2).sum(axis=1).mean())
    return x / (total if total > 0 else 1.0)
