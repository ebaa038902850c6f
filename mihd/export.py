"""`mihd export`: a run's cells as AnnData for scanpy, and as a figure of predicted beside truth domains.

The .h5ad is the slice as `load_slice` gives it (raw counts in X, spots, images, truth) plus, per cell,
`obs["mihd_<cell>"]` (categorical cluster labels, NaN for spots the cell did not score) with
`uns["mihd_<cell>_colors"]` matched to the truth colours, the fused embedding it clustered in
`obsm["mihd_<cell>"]` when the run kept it (`mihd.results.save_fused`), and `uns["mihd_run"]` (the run's id,
spec and per-cell scores); so `scanpy.pl.spatial(adata, color="mihd_<cell>")` needs no extra step.
`<cell>` is the cell's label without the slice, `/` and spaces written `_` (HDF5 keys cannot hold `/`).

The PNG draws one cell from result.json alone (no slice load): predicted beside truth, coloured as the
dashboard's map (mihd.domain_colours), a legend of the domain names, ARI and NMI in the title, PNG_SIZE pixels.
Every output is written to a temporary name beside it and renamed into place only when all are made, so a
failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import MihdError
from .plan import Cell
from .results import entry_slice

PNG_SIZE = (1200, 600)  # width x height in pixels
PNG_DPI = 100
OBS_PREFIX = "mihd_"


@dataclass(frozen=True)
class RunCell:
    index: int           # position in result.json's cells (and the fused/<index>.npy file)
    cell: Cell
    entry: dict          # the result.json cell

    @property
    def key(self) -> str:
        return obs_key(self.cell)


def _why(exc: OSError) -> str:
    """The system's reason for a failed write (h5py words its own, over several lines, around the errno)."""
    return os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))


def obs_key(cell: Cell) -> str:
    """`mihd_pca+texture_concat_gmm`: the obs/obsm key of a cell inside its slice's AnnData."""
    return OBS_PREFIX + re.sub(r"[^A-Za-z0-9_.+-]", "_", cell.label.split(" ", 1)[1])


@dataclass
class Run:
    id: str
    run_dir: Path
    result: dict
    plan: object  # its RunSpec, None when spec.json is unreadable

    @classmethod
    def load(cls, root, run: str) -> "Run":
        """A finished run by id, id prefix or name, with its result.json."""
        from .rundir import read_plan, read_result
        from .runs.status import RunWatcher

        watcher = RunWatcher(root)
        try:
            view = watcher.view(run)
        finally:
            watcher.close()
        result = read_result(Path(view.run_dir))
        if not isinstance(result, dict) or not isinstance(result.get("cells"), list) \
                or not isinstance(result.get("spots"), dict):
            raise MihdError(f"run {view.id}: no result to export (status {view.status})")
        return cls(view.id, Path(view.run_dir), result, read_plan(Path(view.run_dir)))

    def cells(self) -> list[RunCell]:
        """The cells that produced labels (failed ones have none)."""
        out = []
        for i, entry in enumerate(self.result["cells"]):
            if isinstance(entry, dict) and isinstance(entry.get("labels"), list):
                out.append(RunCell(i, Cell.from_dict({**entry, "slice": entry_slice(self.result, entry)}), entry))
        return out

    def select(self, wanted: list[str] | None) -> list[RunCell]:
        """The cells named by `--cell` (an index, the label, or the label without the slice); all without it."""
        cells = self.cells()
        if not cells:
            raise MihdError(f"run {self.id}: no cell has labels to export")
        if not wanted:
            return cells
        chosen = []
        for w in wanted:
            w = " ".join(w.split())
            match = [c for c in cells if w in (str(c.index), c.cell.label, c.cell.label.split(" ", 1)[1], c.key)]
            if not match:
                names = "; ".join(f"{c.index}: {c.cell.label}" for c in cells)
                raise MihdError(f"--cell {w!r}: not a cell of run {self.id} (cells: {names})")
            chosen.extend(c for c in match if c not in chosen)
        return chosen

    def on_one_slice(self, chosen: list[RunCell]) -> "Run":
        """This run as its chosen cells' slice sees it: a study's cells must be of one slice, whose spots are
        in the cells' own result.json (the study's holds none); any other run as it is."""
        if not self.result.get("slices"):
            return self
        slices = list(dict.fromkeys(c.cell.slice for c in chosen))
        if len(slices) > 1:
            raise MihdError(f"run {self.id}: a study over slices {', '.join(self.result['slices'])}; choose cells of "
                            f"one slice with --cell (e.g. --cell {chosen[0].index})")
        from .jsonio import read_json
        from .rundir import RESULT
        from .runs.fanout import cell_dir

        own = read_json(cell_dir(self.run_dir, chosen[0].index) / RESULT)
        if not isinstance(own, dict) or not isinstance(own.get("spots"), dict):
            raise MihdError(f"run {self.id}: cell {chosen[0].index} kept no result to export")
        source = self.plan.source_of(slices[0]) if self.plan is not None else slices[0]
        return Run(self.id, self.run_dir, {**self.result, "slice": source, "spots": own["spots"]}, self.plan)

    @property
    def slice_options(self) -> dict:
        opts = self.plan.slice_options if self.plan is not None else {}
        return {k: opts[k] for k in ("truth_col", "fullres") if opts.get(k)}


def best(cells: list[RunCell]) -> RunCell:
    """The cell with the highest ARI (the first when none is scored)."""
    return max(cells, key=lambda c: (c.entry.get("ari") is not None, c.entry.get("ari") or 0.0, -c.index))


def check_out(path: str | os.PathLike, flag: str) -> Path:
    """An output path that can be written: its folder exists and is writable, it is not a folder."""
    out = Path(path).expanduser()
    parent = out.parent
    if out.is_dir():
        raise MihdError(f"{flag} {path}: is a folder; give a file name")
    if out.is_symlink() and not out.exists():
        raise MihdError(f"{flag} {path}: a symbolic link to nothing (or a loop); give a file name")
    if not parent.is_dir():
        raise MihdError(f"{flag} {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise MihdError(f"{flag} {path}: not writable")
    return out


class Staged:
    """Outputs made under temporary names beside their targets; `commit` renames them all into place,
    leaving the block without commit removes them."""

    def __init__(self):
        self.pending: list[tuple[Path, Path]] = []

    def tmp(self, target: Path) -> Path:
        tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
        self.pending.append((tmp, target))
        return tmp

    def commit(self) -> None:
        for tmp, target in self.pending:
            os.replace(tmp, target)
        self.pending = []

    def __enter__(self) -> "Staged":
        return self

    def __exit__(self, *exc) -> None:
        for tmp, _ in self.pending:
            tmp.unlink(missing_ok=True)


# -- AnnData ----------------------------------------------------------------------------------------------------
def to_anndata(run: Run, cells: list[RunCell], root=None, slice_source: str | None = None):
    """(the slice with the cells' labels, embeddings and the run in uns; labels of cells with no kept embedding)."""
    import numpy as np
    import pandas as pd

    from .data import load_slice
    from .domain_colours import UNLABELLED, matched_colours, truth_colours
    from .results import load_fused

    source = slice_source or run.result.get("slice")
    adata = load_slice(source, root=root, **run.slice_options)
    spots = run.result["spots"]
    barcodes = spots.get("barcodes") or []
    pos = pd.Index(adata.obs_names).get_indexer(barcodes)
    if len(barcodes) == 0 or (pos < 0).any():
        missing = int((pos < 0).sum()) if len(barcodes) else "all"
        raise MihdError(f"slice {source}: {missing} of run {run.id}'s spots are not in it "
                        "(changed since the run? give the slice it used with --slice)")
    truth = spots.get("truth")
    tmap = truth_colours(truth or [])
    no_embedding, scores = [], {}
    for c in cells:
        labels = np.asarray(c.entry["labels"], dtype=np.int64)
        if labels.shape != (len(barcodes),):
            raise MihdError(f"run {run.id}: cell {c.index} has {labels.size} labels for {len(barcodes)} spots")
        clusters = [int(x) for x in np.unique(labels[labels >= 0])]
        codes = np.full(adata.n_obs, -1, dtype=np.int64)
        codes[pos] = np.where(labels >= 0, np.searchsorted(clusters, labels), -1)
        adata.obs[c.key] = pd.Categorical.from_codes(codes, categories=[str(x) for x in clusters])
        colours = matched_colours(labels.tolist(), truth, tmap)
        adata.uns[f"{c.key}_colors"] = [colours[x] for x in clusters]
        fused = load_fused(run.run_dir, c.index)
        if fused is None:
            no_embedding.append(c.cell.label)
        else:
            adata.obsm[c.key] = _spread(fused, pos, labels, adata.n_obs, f"run {run.id} cell {c.index}")
        scores[c.key] = {k: float("nan") if c.entry.get(k) is None else float(c.entry[k]) for k in ("ari", "nmi")}
    if "truth" in adata.obs and hasattr(adata.obs["truth"], "cat"):
        adata.uns["truth_colors"] = [tmap.get(str(t), UNLABELLED) for t in adata.obs["truth"].cat.categories]
    adata.uns["mihd_run"] = {
        "id": run.id,
        "spec": json.dumps(run.plan.to_dict() if run.plan is not None else None),
        "cells": json.dumps([{k: v for k, v in c.entry.items() if k != "labels"} for c in cells], default=str),
        "scores": scores,
    }
    return adata, no_embedding


def _spread(fused, pos, labels, n_obs: int, where: str):
    """The fused rows placed on the slice's spots (NaN where the cell scored no spot)."""
    import numpy as np

    scored = labels >= 0
    if fused.ndim != 2 or fused.shape[0] not in (labels.size, int(scored.sum())):
        raise MihdError(f"{where}: fused embedding of shape {fused.shape} does not fit its {int(scored.sum())} spots")
    out = np.full((n_obs, fused.shape[1]), np.nan, dtype=np.float32)
    out[pos if fused.shape[0] == labels.size else pos[scored]] = fused
    return out


# -- PNG --------------------------------------------------------------------------------------------------------
def draw_png(run: Run, cell: RunCell, out: Path) -> None:
    """Predicted beside truth, PNG_SIZE pixels, written to `out` (a PNG whatever its suffix)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from .domain_colours import legend, map_colours

    spots = run.result["spots"]
    x, y = np.asarray(spots.get("x") or [], float), np.asarray(spots.get("y") or [], float)
    labels = cell.entry["labels"]
    if x.size == 0 or x.size != len(labels):
        raise MihdError(f"run {run.id}: result.json has no spot coordinates to draw")
    truth = spots.get("truth")
    pred, true = map_colours(spots, labels)
    width, height = PNG_SIZE
    fig = Figure(figsize=(width / PNG_DPI, height / PNG_DPI), dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    panels = (fig.add_axes((0.01, 0.02, 0.38, 0.84)), fig.add_axes((0.41, 0.02, 0.38, 0.84)))
    xr, yr = max(np.ptp(x), 1e-9), max(np.ptp(y), 1e-9)
    points = min(0.38 * width / xr, 0.84 * height / yr) * 72 / PNG_DPI  # points per coordinate unit
    size = (np.sqrt(xr * yr / x.size) * points) ** 2 * 0.8
    for ax, colours, title in zip(panels, (pred, true), ("predicted", "truth" if truth else "no truth labels")):
        ax.scatter(x, y, c=colours, s=size, marker="o", linewidths=0)
        ax.set_aspect("equal")
        ax.invert_yaxis()
        ax.set_axis_off()
        ax.set_title(title, fontsize=12)
    key = legend(spots, labels)
    fig.legend([Line2D([], [], marker="o", linestyle="", markersize=9, markerfacecolor=col, markeredgewidth=0)
                for _, col in key], [name for name, _ in key], loc="center left", bbox_to_anchor=(0.80, 0.45),
               frameon=False, fontsize=11, title="domain" if truth else "cluster")
    ari, nmi = cell.entry.get("ari"), cell.entry.get("nmi")
    score = "no truth to score against" if ari is None or nmi is None else f"ARI {ari:.3f}   NMI {nmi:.3f}"
    seeds = cell.entry.get("seeds") if isinstance(cell.entry.get("seeds"), list) else []
    if ari is not None and len(seeds) > 1:  # the map is of the first seed; the scores are over all of them
        score = f"ARI {ari:.3f} ± {cell.entry.get('ari_sd') or 0:.3f} over {len(seeds)} seeds (map: seed " \
                f"{seeds[0].get('seed')})"
    flag = "   (random init)" if cell.entry.get("random_init") else ""
    fig.suptitle(f"{cell.cell.label}   {score}{flag}", fontsize=14)
    fig.savefig(out, format="png", dpi=PNG_DPI)


def export(root, run_ref: str, *, cells: list[str] | None = None, h5ad=None, png=None,
           slice_source: str | None = None) -> dict:
    """Write the asked outputs; returns what was written: {"h5ad", "png", "cells", "no_embedding", "png_cell"}."""
    if h5ad is None and png is None:
        raise MihdError("mihd export: nothing to write; give --h5ad OUT and/or --png OUT")
    h5ad_out = check_out(h5ad, "--h5ad") if h5ad is not None else None
    png_out = check_out(png, "--png") if png is not None else None
    if h5ad_out is not None and png_out is not None and h5ad_out.resolve() == png_out.resolve():
        raise MihdError(f"--png {png}: the same file as --h5ad")
    run = Run.load(root, run_ref)
    chosen = run.select(cells)
    run = run.on_one_slice(chosen)
    report = {"run": run.id, "cells": [c.cell.label for c in chosen], "h5ad": None, "png": None,
              "png_cell": None, "no_embedding": []}
    with Staged() as staged:
        if h5ad_out is not None:
            adata, report["no_embedding"] = to_anndata(run, chosen, root=root, slice_source=slice_source)
            tmp = staged.tmp(h5ad_out)
            try:
                adata.write_h5ad(tmp)
            except OSError as exc:
                raise MihdError(f"--h5ad {h5ad}: cannot write ({_why(exc)})") from None
            report["h5ad"] = str(h5ad_out)
        if png_out is not None:
            drawn = best(chosen)
            try:
                draw_png(run, drawn, staged.tmp(png_out))
            except OSError as exc:
                raise MihdError(f"--png {png}: cannot write ({_why(exc)})") from None
            report["png"], report["png_cell"] = str(png_out), drawn.cell.label
        staged.commit()
    return report
