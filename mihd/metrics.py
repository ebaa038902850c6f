"""Scores against truth labels, over labelled spots only (NaN / None / "" truth is left out)."""

from __future__ import annotations

import numpy as np


def labelled_mask(truth) -> np.ndarray:
    import pandas as pd

    t = pd.Series(np.asarray(truth, dtype=object))
    return (~t.isna() & (t.astype(str) != "")).to_numpy()


def _score(fn, labels, truth):
    if truth is None:
        return None
    labels, truth = np.asarray(labels), np.asarray(truth, dtype=object)
    if len(labels) != len(truth):
        raise ValueError(f"labels ({len(labels)}) and truth ({len(truth)}) differ in length")
    keep = labelled_mask(truth)
    if not keep.any():
        return None
    return float(fn(truth[keep].astype(str), labels[keep]))


def ari(labels, truth) -> float | None:
    from sklearn.metrics import adjusted_rand_score

    return _score(adjusted_rand_score, labels, truth)


def nmi(labels, truth) -> float | None:
    from sklearn.metrics import normalized_mutual_info_score

    return _score(normalized_mutual_info_score, labels, truth)
