"""The one path from a slice to scores, used by `mihd run`, `mihd grid` and every launched run.

Each embedding a set of cells needs is loaded (or extracted) once through `extract.get_embedding`;
each cell then goes through `fusion.run_cell_arrays`, which applies the method's preprocessing profile
exactly once. Progress, cache hits/misses and scores go to the run dir's events.jsonl as they happen,
and result.json (scores, timings, labels, spot map) is written atomically at the end.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import MihdError
from .rundir import EventLog, write_result


CELL_STAGES = ("load", "fuse", "cluster")  # the stages of every cell, in order (named in its `cell` event)


@dataclass(frozen=True)
class Cell:
    gene: str
    vision: str | None
    variant: str
    fusion: str
    cluster: str

    @property
    def label(self) -> str:
        vision = f"+{self.vision}" + (f"/{self.variant}" if self.variant != "standard" else "") if self.vision else ""
        return f"{self.gene}{vision} {self.fusion} {self.cluster}"


def grid_cells(genes, visions, fusions, clusters, variant: str = "standard") -> list[Cell]:
    """The cross product; one-modality fusions that ignore vision still get one cell per vision column."""
    return [Cell(g, v, variant, f, c) for g, v, f, c in itertools.product(genes, visions or [None], fusions, clusters)]


def check_cells(cells: list[Cell]) -> None:
    """Bad names fail before the slice is loaded or anything is computed."""
    from .cluster import get_clusterer
    from .encoders import check_variant
    from .fusion import get_fusion

    for cell in cells:
        method = get_fusion(cell.fusion)
        get_clusterer(cell.cluster)
        if cell.vision:
            check_variant(cell.variant)
        elif method.needs_vision:
            raise MihdError(f"--fusion {cell.fusion}: needs a vision embedding (--vision)")


class _Embeddings:
    """Loads each (modality, name, variant) once per run, emitting one cache event for it."""

    def __init__(self, adata, root: Path, events: EventLog, override: bool, config: dict):
        from .cache import EmbeddingCache

        self.adata, self.root, self.events, self.override, self.config = adata, root, events, override, config
        self.cache = EmbeddingCache(root)
        self.loaded: dict[tuple, object] = {}

    def get(self, modality: str, name: str, variant: str):
        from .extract import get_embedding

        key = (modality, name, variant if modality == "vision" else "-")
        if key not in self.loaded:
            self.loaded[key] = get_embedding(self.adata, modality, name, root=self.root, variant=variant,
                                             override=self.override, config=self.config, events=self.events,
                                             cache=self.cache)
        return self.loaded[key]

    def close(self) -> None:
        self.cache.close()


def _spots(adata) -> dict:
    truth = adata.obs["truth"] if "truth" in adata.obs else None
    return {
        "barcodes": [str(b) for b in adata.obs_names],
        "x": np.round(adata.obsm["spatial"][:, 0], 2).tolist() if "spatial" in adata.obsm else None,
        "y": np.round(adata.obsm["spatial"][:, 1], 2).tolist() if "spatial" in adata.obsm else None,
        "truth": None if truth is None else [None if isinstance(t, float) else str(t) for t in truth.astype(object)],
    }


def default_n_clusters(adata, n_clusters: int | None) -> int:
    if n_clusters is not None:
        return n_clusters
    if "truth" in adata.obs and adata.obs["truth"].notna().any():
        return int(adata.obs["truth"].nunique())
    raise MihdError("--n-clusters: required, since the slice has no truth labels to take the number from")


def run_cells(adata, cells: list[Cell], *, root: Path, run_dir: Path | None = None, n_clusters: int | None = None,
              refine: bool = False, seed: int = 0, override: bool = False, encoder_config: dict | None = None,
              drop_unlabelled: bool = False, argv: list[str] | None = None, keep_going: bool = False) -> dict:
    """Run `cells` on the loaded slice; returns the result.json content (also written when run_dir is set).

    With `keep_going` (the grid), a failing cell is recorded with its error and the others still run;
    otherwise the first MihdError ends the run (recorded in result.json, then raised).
    """
    from .fusion import run_cell_arrays
    from .metrics import ari, labelled_mask, nmi

    check_cells(cells)
    events = EventLog(run_dir)
    events.emit("start", argv=argv or [], cells=len(cells), slice=adata.uns["mihd"]["slice_id"])
    result = {"slice": adata.uns["mihd"]["slice_id"], "status": "ok", "error": None, "spots": _spots(adata), "cells": []}
    embeddings = _Embeddings(adata, root, events, override, encoder_config or {})
    truth = result["spots"]["truth"]
    keep = labelled_mask(truth) if (drop_unlabelled and truth is not None) else np.ones(adata.n_obs, dtype=bool)
    try:
        k = default_n_clusters(adata, n_clusters)
        for index, cell in enumerate(cells):
            events.emit("cell", index=index, of=len(cells), cell=asdict(cell), stages=list(CELL_STAGES))
            try:
                entry = _run_one(cell, embeddings, adata, keep, k, refine, seed, events, run_cell_arrays)
            except MihdError as exc:
                if not keep_going:
                    raise
                entry = {**_describe(cell, k, refine), "error": str(exc), "ari": None, "nmi": None}
                result["status"] = "failed"
            if "labels" in entry:
                entry["ari"] = ari(entry["labels"], truth) if truth else None
                entry["nmi"] = nmi(entry["labels"], truth) if truth else None
            events.emit("metric", index=index, ari=entry["ari"], nmi=entry["nmi"],
                        random_init=bool(entry.get("random_init")), **({"error": entry["error"]} if "error" in entry else {}))
            result["cells"].append(entry)
        if result["status"] == "failed":
            result["error"] = "some cells failed"
    except MihdError as exc:
        result.update(status="failed", error=str(exc))
        raise
    finally:
        embeddings.close()
        if run_dir is not None:
            write_result(run_dir, result)
        events.emit("end", status=result["status"], **({"error": result["error"]} if result["error"] else {}))
        events.close()
    return result


def _describe(cell: Cell, k: int, refine: bool) -> dict:
    return {"gene": cell.gene, "vision": cell.vision, "variant": cell.variant if cell.vision else None,
            "fusion": cell.fusion, "cluster": cell.cluster, "n_clusters": k, "refine": refine}


def _run_one(cell: Cell, embeddings: _Embeddings, adata, keep, k, refine, seed, events, run_cell_arrays) -> dict:
    started = time.perf_counter()
    events.stage("load", 0, 1)
    gene = embeddings.get("gene", cell.gene, "-")
    vision = embeddings.get("vision", cell.vision, cell.variant) if cell.vision else None
    events.stage("load", 1, 1)
    load_seconds = time.perf_counter() - started
    g, v = gene.embedding, vision.embedding if vision else None
    if not keep.all():
        g = g.subset(keep)
        v = v.subset(keep) if v is not None else None
    labels, _, timings = run_cell_arrays(
        g, v, adata.obsm["spatial"][keep], fusion=cell.fusion, cluster=cell.cluster, n_clusters=k, refine=refine,
        seed=seed, progress=lambda stage, done, total: events.stage(stage, done, total))
    full = np.full(adata.n_obs, -1, dtype=np.int64)
    full[keep] = labels
    cache = {"gene": gene.status, **({"vision": vision.status} if vision else {})}
    cached = all(s == "hit" for s in cache.values())
    random_init = bool(g.meta.get("random_init") or (v is not None and v.meta.get("random_init")))
    return {
        **_describe(cell, k, refine),
        "signature": {"slice": adata.uns["mihd"]["slice_id"], "gene": cell.gene, "vision": cell.vision,
                      "variant": cell.variant if cell.vision else None, "fusion": cell.fusion,
                      "cluster": cell.cluster, "cached": cached},
        "seconds": {"load": round(load_seconds, 3), "fuse": round(timings["fuse"], 3),
                    "cluster": round(timings["cluster"], 3), "total": round(time.perf_counter() - started, 3)},
        "cache": cache, "random_init": random_init, "labels": full.tolist(), "n_scored_spots": int(keep.sum()),
    }
