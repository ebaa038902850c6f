"""Source fingerprints: a changed slice must be a cache miss, never a stale hit.

Gene and vision inputs are fingerprinted apart, so a new image does not invalidate gene embeddings.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import scipy.sparse as sp


def _update_array(h, array) -> None:
    array = np.ascontiguousarray(array)
    h.update(str(array.dtype).encode() + str(array.shape).encode())
    h.update(memoryview(array).cast("B"))


def _update_strings(h, values) -> None:
    h.update("\x1f".join(map(str, values)).encode())


def gene_fingerprint(adata) -> str:
    h = hashlib.blake2b(digest_size=16)
    X = adata.X
    if sp.issparse(X):
        X = X.tocsr()
        for part in (X.data, X.indices, X.indptr):
            _update_array(h, part)
    else:
        _update_array(h, np.asarray(X))
    _update_strings(h, adata.obs_names)
    _update_strings(h, adata.var_names)
    if "sum_umi" in adata.obs:
        _update_array(h, adata.obs["sum_umi"].to_numpy(dtype=np.float64))
    return h.hexdigest()


def vision_fingerprint(adata) -> str:
    h = hashlib.blake2b(digest_size=16)
    _update_strings(h, adata.obs_names)
    if "spatial" in adata.obsm:
        _update_array(h, np.asarray(adata.obsm["spatial"], dtype=np.float64))
    for lib, entry in sorted(adata.uns.get("spatial", {}).items()):
        h.update(lib.encode())
        h.update(json.dumps(entry.get("scalefactors", {}), sort_keys=True, default=float).encode())
        for name, image in sorted(entry.get("images", {}).items()):
            h.update(name.encode())
            _update_array(h, image)
    return h.hexdigest()
