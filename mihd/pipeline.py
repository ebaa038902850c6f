"""The one path from a slice to scores, used by `mihd run`, `mihd grid` and every launched run.

Each embedding a set of cells needs is loaded (or extracted) once through `extract.get_embedding`;
each cell then goes through `fusion.run_cell_arrays`, which applies the method's preprocessing profile
exactly once. Progress, cache hits/misses and scores go to the run dir's events.jsonl as they happen,
and result.json (scores, timings, labels, spot map) is written atomically at the end.

With several seeds a cell is fused and clustered once per seed on the embeddings loaded once; its entry keeps
every seed's scores (`seeds`), their mean as `ari`/`nmi` (sd as `ari_sd`/`nmi_sd`), and the labels and fused
embedding of the first seed. Stage events then count over all seeds, so a cell's progress only moves forward.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

import numpy as np

from .errors import MihdError
from .plan import Cell, RunSpec
from .results import Stat, save_fused
from .rundir import EventLog, write_result
from .runs.cells import stored


CELL_STAGES = ("load", "fuse", "cluster")  # the stages of every cell, in order (named in its `cell` event)


def check_plan(spec: RunSpec) -> None:
    """Bad names (fusion, clusterer, variant, encoder options) fail before the slice is loaded or anything
    is computed."""
    from .cluster import get_clusterer
    from .encoders import check_variant
    from .fusion import get_fusion

    from .encoders.vision import check_precision

    if spec.encoder.get("precision"):
        check_precision(spec.encoder["precision"])
    for cell in spec.cells:
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


def check_slice_for(adata, spec: RunSpec) -> None:
    """What the plan needs of this loaded slice (data.checked.check_fits), said before a run dir or an embedding is
    made from it."""
    from .data.checked import check_fits, facts_of

    check_fits(facts_of(adata), spec, adata.uns["mihd"]["slice_id"])


def run_cells(adata, spec: RunSpec, *, root: Path, run_dir: Path | None = None,
              argv: list[str] | None = None) -> dict:
    """Run the plan's cells on the loaded slice; returns the result.json content (also written when run_dir is set).

    A grid (kind `grid`) records a failing cell with its error and still runs the others; a `run` ends at
    the first MihdError (recorded in result.json, then raised).
    """
    from .metrics import labelled_mask

    check_plan(spec)
    check_slice_for(adata, spec)
    cells, keep_going = spec.cells, spec.kind == "grid"
    events = EventLog(run_dir)
    events.emit("start", argv=argv or [], cells=len(cells), slice=adata.uns["mihd"]["slice_id"])
    result = {"slice": adata.uns["mihd"]["slice_id"], "status": "ok", "error": None, "spots": _spots(adata), "cells": []}
    embeddings = _Embeddings(adata, root, events, spec.override, {**spec.encoder, "device": spec.device})
    truth = result["spots"]["truth"]
    keep = labelled_mask(truth) if (spec.drop_unlabelled and truth is not None) else np.ones(adata.n_obs, dtype=bool)
    try:
        k = default_n_clusters(adata, spec.n_clusters)
        for index, cell in enumerate(cells):
            events.emit("cell", index=index, of=len(cells), cell=_fields(cell), stages=list(CELL_STAGES))
            try:
                entry = _run_one(index, cell, embeddings, adata, keep, k, spec, truth, events)
            except (MihdError, OSError) as exc:
                error = _cell_error(exc, run_dir)
                if not keep_going:
                    raise error from None
                entry = {**_describe(cell, k, spec.refine), "error": str(error), "ari": None, "nmi": None}
                result["status"] = "failed"
            events.emit("metric", index=index, ari=entry["ari"], nmi=entry["nmi"], n=len(spec.seeds),
                        random_init=bool(entry.get("random_init")), **({"error": entry["error"]} if "error" in entry else {}))
            result["cells"].append(entry)
        if result["status"] == "failed":
            result["error"] = "some cells failed"
    except MihdError as exc:
        result.update(status="failed", error=str(exc))
        raise
    finally:
        embeddings.close()
        unwritten = _write_result(run_dir, result)
        events.emit("end", status=result["status"], **({"error": result["error"]} if result["error"] else {}))
        events.close()
    if unwritten:
        raise MihdError(unwritten)
    return result


def _cell_error(exc: Exception, run_dir: Path | None) -> MihdError:
    """A cell's failure as one line: a MihdError as it is, a write refused by a full disk or quota (numpy
    says a short write without an errno) naming the file (never a traceback); any other OSError is raised."""
    if isinstance(exc, MihdError):
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or (exc.errno is None and "written" in str(exc)):
        return MihdError(f"{exc.filename or run_dir}: cannot be written ({exc.strerror or exc})")
    raise exc


def _write_result(run_dir: Path | None, result: dict) -> str | None:
    """result.json into the run dir; when it cannot be written (a full disk), the result turns failed and
    the one line that says why is returned (the run's end event and error then say so, not `ok`)."""
    if run_dir is None:
        return None
    try:
        write_result(run_dir, result)
    except OSError as exc:
        why = f"{Path(run_dir) / 'result.json'}: cannot be written ({exc.strerror or exc})"
        result.update(status="failed", error=why)
        return why
    return None


def _fields(cell: Cell) -> dict:
    """What the `cell` event says of a cell (the slice is in the `start` event)."""
    return {"gene": cell.gene, "vision": cell.vision, "variant": cell.variant, "fusion": cell.fusion,
            "cluster": cell.cluster}


def _describe(cell: Cell, k: int, refine: bool) -> dict:
    return {**_fields(cell), "n_clusters": k, "refine": refine}


def _run_one(index: int, cell: Cell, embeddings: _Embeddings, adata, keep, k, spec: RunSpec, truth, events) -> dict:
    from .fusion import run_cell_arrays
    from .metrics import ari, nmi

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
    n, first, scores, spent = len(spec.seeds), None, [], {"fuse": 0.0, "cluster": 0.0}
    for i, seed in enumerate(spec.seeds):
        labels, fused, timings = run_cell_arrays(
            g, v, adata.obsm["spatial"][keep], fusion=cell.fusion, cluster=cell.cluster, n_clusters=k,
            refine=spec.refine, seed=seed, device=spec.device, adata=adata if keep.all() else adata[keep],
            progress=lambda stage, done, total, i=i, **f: events.stage(stage, i * total + done, n * total, **f))
        full = np.full(adata.n_obs, -1, dtype=np.int64)
        full[keep] = labels
        if first is None:
            first = full
            if events.run_dir is not None:
                save_fused(events.run_dir, index, fused)
        scores.append({"seed": seed, "ari": ari(full, truth) if truth else None,
                       "nmi": nmi(full, truth) if truth else None})
        spent = {stage: spent[stage] + timings[stage] for stage in spent}
    ari_stat, nmi_stat = Stat.of(s["ari"] for s in scores), Stat.of(s["nmi"] for s in scores)
    cache = {"gene": gene.status, **({"vision": vision.status} if vision else {})}
    cached = all(s == "hit" for s in cache.values())
    random_init = bool(g.meta.get("random_init") or (v is not None and v.meta.get("random_init")))
    return {
        **_describe(cell, k, spec.refine),
        "signature": stored(cell, cached, n_seeds=n),
        "ari": ari_stat.mean, "nmi": nmi_stat.mean,
        **({"ari_sd": ari_stat.sd, "nmi_sd": nmi_stat.sd, "seeds": scores} if n > 1 else {}),
        "seconds": {"load": round(load_seconds, 3), "fuse": round(spent["fuse"], 3),
                    "cluster": round(spent["cluster"], 3), "total": round(time.perf_counter() - started, 3)},
        "cache": cache, "random_init": random_init, "labels": first.tolist(), "n_scored_spots": int(keep.sum()),
    }
