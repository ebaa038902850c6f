"""The one path from a slice to an embedding: cache lookup first, the encoder only on a miss.

`mihd extract`, `mihd run`, `mihd grid` and launched runs all come through `get_embedding`, so a hit never
builds a model and every miss is stored the same way (raw float32 + provenance). A hit that contradicts
what the caller explicitly asked for (random vs pretrained weights, another precision) is refused with
the two ways out, never silently served nor silently replaced.

A miss is computed once however many processes (on one host or several) need it at the same time: the
first claims the entry's lock, the others wait, saying for whom, and then load what it stored.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .cache import GENE_VARIANT, CacheKey, EmbeddingCache, entry_flags, unreadable_advice
from .cache_flight import wait_note
from .embedding import Embedding
from .encoders import REGISTRY, check_variant, get_encoder
from .errors import MihdError
from .rundir import EventLog
from .workspace import runs_dir


def lock_run(root: Path, run_dir: Path | None) -> str | None:
    """The run a cache lock names: its dir under the workspace's runs/ (`GRID/extract/vision-uni-standard`
    for a fanned-out grid's extraction), so the cache tab finds that part's progress; else the dir's name."""
    if run_dir is None:
        return None
    try:
        return Path(run_dir).resolve().relative_to(runs_dir(root).resolve()).as_posix()
    except ValueError:
        return Path(run_dir).name


@dataclass
class Extracted:
    embedding: Embedding
    status: str  # hit | miss | stale | corrupt | override
    seconds: float


def cache_key(adata, modality: str, name: str, variant: str | None, cache_name: str | None = None) -> CacheKey:
    if modality == "gene":
        variant = GENE_VARIANT
    else:
        variant = check_variant(variant or "standard")
    return CacheKey(adata.uns["mihd"]["slice_id"], modality, cache_name or name, variant)


def get_embedding(adata, modality: str, name: str, *, root: Path, variant: str | None = "standard",
                  cache_name: str | None = None, override: bool = False, config: dict | None = None,
                  events: EventLog | None = None, cache: EmbeddingCache | None = None,
                  cache_from: list[Path] | None = None) -> Extracted:
    """Load `name` (an encoder or a custom cache name) for this slice, computing it on a miss.
    `cache_from`: read-only workspaces looked in when this one misses (never written)."""
    events = events or EventLog(None)
    own_cache = cache is None
    cache = cache or EmbeddingCache(root, sources=cache_from)
    try:
        key = cache_key(adata, modality, name, variant, cache_name)
        is_encoder = name in REGISTRY.get(modality, {})
        if not is_encoder and cache_name is None and modality in REGISTRY:
            # a custom cache name (e.g. scan_uni2): nothing to compute, only a lookup
            return _lookup_only(adata, key, cache, events)
        get_encoder(modality, name)  # unknown encoder -> one-line error before any work
        fingerprint = adata.uns["mihd"]["fingerprint"][modality]
        started = time.perf_counter()
        status = "override"
        if not override:
            found = cache.lookup(key, fingerprint)
            if found.status == "hit":
                return _served(found, key, config, events, started)
            if found.status == "unreadable":  # another user's entry: never recomputed over
                raise MihdError(unreadable_advice(found.reason))
            if found.reason:
                print(f"mihd: {found.reason}; recomputing", file=sys.stderr)
            status = found.status
        if modality == "vision" and not _has_image(adata):
            raise MihdError(f"slice {key.slice!r}: has no H&E image, which --vision {name} needs")
        cache.check_writable(f"store {key}")  # said before minutes of computing, not after
        found, claim = cache.acquire(key, fingerprint, run=lock_run(cache.root, events.run_dir),
                                     flags=tuple(entry_flags({"config": config or {}})),
                                     on_wait=lambda holder: _waiting(key, holder, events), want_hit=not override)
        if claim is None:  # another process computed it while this one waited
            return _served(found, key, config, events, started)
        try:
            embedding = _compute(adata, modality, name, key, cache, config or {}, events, claim)
        finally:
            claim.release()
        seconds = time.perf_counter() - started
        events.emit("cache", modality=modality, name=key.name, variant=key.variant, status=status, seconds=round(seconds, 4))
        return Extracted(embedding, status, seconds)
    finally:
        if own_cache:
            cache.close()


def _served(found, key: CacheKey, config: dict | None, events: EventLog, started: float) -> Extracted:
    _check_asked(key, found.embedding.meta, config or {})
    seconds = time.perf_counter() - started
    events.emit("cache", modality=key.modality, name=key.name, variant=key.variant, status="hit", seconds=round(seconds, 4))
    return Extracted(found.embedding, "hit", seconds)


def _waiting(key: CacheKey, holder: dict, events: EventLog) -> None:
    who = f"run {holder['run']} on " if holder.get("run") else ""
    who += f"{holder.get('host', '?')} (pid {holder.get('pid', '?')})"
    print(f"mihd: waiting for {key} computed by {who}; {wait_note(holder)}", file=sys.stderr, flush=True)
    events.emit("cache", modality=key.modality, name=key.name, variant=key.variant, status="waiting",
                holder={k: holder.get(k) for k in ("run", "host", "pid")})


def _check_asked(key: CacheKey, meta: dict, asked: dict) -> None:
    """Refuse a hit made otherwise than explicitly asked: the weights' kind, or (model encoders) precision."""
    have = meta.get("config") or {}
    random_have = bool(meta.get("random_init") or have.get("random_init"))
    conflicts = []
    if asked.get("random_init") and not random_have:
        conflicts.append("pretrained weights, asked for random init")
    if asked.get("weights") and random_have:
        conflicts.append("random-init weights, asked for --weights")
    if asked.get("precision") and "timm_name" in have and asked["precision"] != have.get("precision", "fp32"):
        conflicts.append(f"{have.get('precision', 'fp32')} embeddings, asked for {asked['precision']}")
    if conflicts:
        raise MihdError(f"cache entry {key}: holds {'; '.join(conflicts)}; --override replaces it, "
                        "--cache-name NAME keeps both")


def _lookup_only(adata, key: CacheKey, cache: EmbeddingCache, events: EventLog) -> Extracted:
    started = time.perf_counter()
    found = cache.lookup(key, adata.uns["mihd"]["fingerprint"][key.modality])
    if found.status != "hit":
        known = ", ".join(REGISTRY[key.modality])
        why = found.reason or f"no cache entry {key}"
        raise MihdError(f"--{key.modality} {key.name!r}: not an encoder ({known}) and {why}")
    seconds = time.perf_counter() - started
    events.emit("cache", modality=key.modality, name=key.name, variant=key.variant, status="hit", seconds=round(seconds, 4))
    return Extracted(found.embedding, "hit", seconds)


def _has_image(adata) -> bool:
    return any(entry.get("images") for entry in adata.uns.get("spatial", {}).values())


def _compute(adata, modality: str, name: str, key: CacheKey, cache: EmbeddingCache, config: dict,
             events: EventLog, claim) -> Embedding:
    encode = get_encoder(modality, name).load()
    stage = f"extract_{modality}"
    events.stage(stage, 0, 1)
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:  # in the run's events, and in the lock for the cache tab
        events.stage(stage, done, total)
        claim.progress(done, total)

    array, effective = encode(adata, variant=key.variant, config=config, progress=progress)
    compute_seconds = time.perf_counter() - started
    meta = cache.put(
        key, array, adata.obs_names,
        encoder=name, config=effective, fingerprint=adata.uns["mihd"]["fingerprint"][modality],
        compute_seconds=round(compute_seconds, 3), random_init=bool(effective.get("random_init", False)),
    )
    events.stage(stage, 1, 1)
    return Embedding(array=array.astype("float32", copy=False), meta=meta, obs_names=adata.obs_names.to_numpy())
