"""Refinements that turn a cached embedding into a new cache entry (SCAN on a vision embedding).

The refined embedding is stored like any other (raw float32 + provenance, the source's fingerprint), so
`mihd run --vision scan_uni2` and the grid's custom columns load it through the ordinary cache path.
"""

from __future__ import annotations

import time
from pathlib import Path

from .cache import CacheKey, EmbeddingCache, validate_name
from .embedding import Embedding
from .extract import Extracted, get_embedding
from .rundir import EventLog


def refine_scan(adata, vision: str, *, root: Path, variant: str = "standard", cache_name: str | None = None,
                n_clusters: int | None = None, seed: int = 0, override: bool = False,
                events: EventLog | None = None, device: str = "auto") -> Extracted:
    """SCAN-refine the vision embedding `vision` and cache it as `cache_name` (default `scan_<vision>`);
    the heads train on `device` (auto | cpu | cuda)."""
    from .compute import check_device, resolve_device
    from .pipeline import default_n_clusters
    from .scan import K_NEIGHBOURS, scan_refine

    check_device(device)  # cuda without a GPU fails here, before any lookup
    events = events or EventLog(None)
    name = validate_name(cache_name or f"scan_{vision}")
    k = default_n_clusters(adata, n_clusters)
    cache = EmbeddingCache(root)
    try:
        key = CacheKey(adata.uns["mihd"]["slice_id"], "vision", name, variant)
        fingerprint = adata.uns["mihd"]["fingerprint"]["vision"]
        if not override:
            found = cache.lookup(key, fingerprint)
            if found.status == "hit":
                return Extracted(found.embedding, "hit", 0.0)
        source = get_embedding(adata, "vision", vision, root=root, variant=variant, events=events, cache=cache)
        started = time.perf_counter()
        device = resolve_device(device)
        logits = scan_refine(source.embedding.array, k, seed=seed, device=device,
                             progress=lambda stage, done, total: events.stage(stage, done, total))
        seconds = time.perf_counter() - started
        meta = cache.put(key, logits, source.embedding.obs_names, encoder="scan",
                         config={"source": vision, "source_variant": variant, "n_clusters": k, "k": K_NEIGHBOURS,
                                 "seed": seed, "device": device, "output": "logits of the lowest-loss head"},
                         fingerprint=fingerprint, compute_seconds=round(seconds, 3),
                         random_init=bool(source.embedding.meta.get("random_init")))
        return Extracted(Embedding(logits, meta, source.embedding.obs_names), "miss", seconds)
    finally:
        cache.close()
