"""What runs produced, read back: the grid's scores as one table (`mihd results`) and each cell's fused embedding.

Scores come from the run dirs' result.json, as the run index keeps them (mihd.runs.registry: every result.json
cell without its per-spot labels; the index is synced first, so new, ended and changed runs are read). A table row is one cell with its clustering options (slice,
gene, vision, variant, fusion, clusterer, k, refine) and gathers every score it has: each seed of a run (a
result.json cell that carries a `seeds` list of {seed, ari, nmi}) and, with `all`, every run of that cell;
`latest` keeps the latest run of each row only. Several scores show as mean, sample sd and n, since the GMM
start alone moves ARI by a few hundredths. Results made with random weights form rows of their own: they
are never averaged with pretrained ones.

`write_tables` puts the table, as Markdown and CSV, under `<root>/results/` (the dashboard's `e`).

The fused embedding of cell `i` is kept as `fused/<i>.npy` in the run dir (`save_fused`), so an export
holds exactly what was clustered, even for trained fusions that would not come out the same twice.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .errors import MihdError
from .plan import Cell

SOURCES = ("latest", "all")
FORMATS = ("table", "csv", "markdown", "json")
FUSED_DIR = "fused"
RESULTS_DIR = "results"  # under the workspace root: tables the dashboard writes (`e` on the grid)
CELL_FIELDS = ("slice", "gene", "vision", "variant", "fusion", "cluster")
COLUMNS = ("slice", "gene", "vision", "variant", "fusion", "cluster", "k", "refine", "random_init", "labelled_only",
           "ari_mean", "ari_sd", "nmi_mean", "nmi_sd", "n", "seconds", "cache", "run_ids")


@dataclass(frozen=True)
class Score:
    """One score of one cell: one seed of one run."""

    cell: Cell
    k: int | None
    refine: bool
    random_init: bool
    run_id: str
    when: float          # when the run ended (else was created): what `latest` orders by
    seed: int | None
    ari: float | None
    nmi: float | None
    seconds: float | None
    cache: tuple         # ((modality, status), ...)
    k_auto: bool = False  # k was the slice's number of truth domains, not asked (--n-clusters)
    labelled_only: bool = False  # scored with --drop-unlabelled: on fewer spots, so never pooled with the others

    @property
    def key(self) -> tuple:
        return (*self.cell.key, self.k, self.refine, self.random_init, self.labelled_only)


@dataclass(frozen=True)
class Stat:
    mean: float | None
    sd: float | None     # sample sd; None under two values
    values: tuple

    @classmethod
    def of(cls, values) -> "Stat":
        vals = tuple(v for v in values if v is not None)
        if not vals:
            return cls(None, None, ())
        mean = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
        return cls(mean, sd, vals)


@dataclass(frozen=True)
class Row:
    cell: Cell
    k: int | None
    refine: bool
    random_init: bool
    ari: Stat
    nmi: Stat
    n: int               # scores gathered (seeds x runs)
    seconds: float | None  # mean time of the cell
    cache: str           # e.g. "gene hit, vision hit/miss"
    run_ids: tuple       # oldest first
    k_auto: bool = False  # k taken from the slice's truth (see Score)
    labelled_only: bool = False  # see Score

    def to_dict(self) -> dict:
        c = self.cell
        return {"slice": c.slice, "gene": c.gene, "vision": c.vision, "variant": c.variant, "fusion": c.fusion,
                "cluster": c.cluster, "k": self.k, "refine": self.refine, "random_init": self.random_init,
                "labelled_only": self.labelled_only, "ari_mean": self.ari.mean, "ari_sd": self.ari.sd, "nmi_mean": self.nmi.mean, "nmi_sd": self.nmi.sd,
                "n": self.n, "seconds": self.seconds, "cache": self.cache, "run_ids": list(self.run_ids)}


def seed_scores(entry: dict) -> list[dict]:
    """A result.json cell's scores, one per seed: its `seeds` list when it has one, else its own ari/nmi."""
    seeds = entry.get("seeds")
    scored = seeds if isinstance(seeds, list) and seeds and all(isinstance(s, dict) for s in seeds) else [entry]
    return [{"seed": s.get("seed") if isinstance(s.get("seed"), int) else None,
             "ari": _number(s.get("ari")), "nmi": _number(s.get("nmi"))} for s in scored]


def entry_slice(result: dict, entry: dict):
    """The slice of a result.json cell: its own (a study's cells each say theirs), else the result's."""
    return entry.get("slice") or result.get("slice")


def _number(value) -> float | None:
    """A score as written (a hand-edited result.json may hold anything)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


INDEXED = ("labelled", "error", *CELL_FIELDS, "refine", "random_init", "k_auto", "drop_unlabelled", "plan_seed",
           "n_clusters", "ari", "nmi", "seconds.total", "cache", "seeds")  # what a score is made of, per indexed cell
NUMBERS = ("n_clusters", "ari", "nmi", "seconds.total")


def entry_scores(run_id: str, when: float, fields, memo: dict) -> list[Score]:
    """The scores of one result.json cell from its INDEXED fields as the run index keeps them (registry: its
    scores and options, `labelled`, its run's `slice` and `plan_seed`); a cell that failed or never finished has
    none. `memo` keeps the Cell of each distinct set of cell fields and each distinct cache state (a study
    repeats a few of each thousands of times)."""
    labelled, error, *cell, refine, random_init, k_auto, drop, plan_seed, k, ari, nmi, secs, cache, seeds = fields
    if not labelled or error:
        return []
    cell = tuple(cell)
    if cell not in memo:
        try:
            memo[cell] = Cell.from_dict(dict(zip(CELL_FIELDS, cell)))
        except MihdError:
            memo[cell] = None  # a result.json from before cells were named as they are now
    if memo[cell] is None:
        return []
    if ("cache", cache) not in memo:
        states = json.loads(cache) if isinstance(cache, str) and cache.startswith("{") else None
        memo["cache", cache] = tuple(sorted((str(m), str(s)) for m, s in states.items())) if states else ()
    seeds = json.loads(seeds) if isinstance(seeds, str) and seeds.startswith("[") else None
    return [Score(memo[cell], k if isinstance(k, int) else None, bool(refine), bool(random_init), run_id, when,
                  s["seed"] if s["seed"] is not None else plan_seed, s["ari"], s["nmi"], secs, memo["cache", cache],
                  bool(k_auto), bool(drop))
            for s in seed_scores({"seeds": seeds, "ari": ari, "nmi": nmi})]


def collect(root=None, slice_id: str | None = None, runs: list[str] | None = None) -> list[Score]:
    """Every score in the workspace (or in the given runs: ids, id prefixes or names), optionally of one slice.
    Read from the run index (brought up to date first: new runs, runs that ended, files that changed), so a
    study of thousands of runs reads no result.json that has not changed."""
    from .runs.status import RunWatcher

    watcher = RunWatcher(root)
    try:
        try:
            wanted = {watcher.resolve(r) for r in runs} if runs else None
        except MihdError as exc:
            raise MihdError(f"--run: {exc}") from None
        watcher.refresh()  # the index synced, active runs followed to their end
        indexed = watcher.registry.entry_fields(INDEXED, NUMBERS)
    finally:
        watcher.close()
    scores, memo = [], {}
    for run_id, when, *fields in indexed:
        if wanted is None or run_id in wanted:
            scores.extend(entry_scores(run_id, when, fields, memo))
    if slice_id is not None:
        slices = sorted({s.cell.slice for s in scores})
        scores = [s for s in scores if s.cell.slice == slice_id]
        if not scores:
            known = ", ".join(slices) or "none"
            raise MihdError(f"--slice {slice_id!r}: no scored cells (slices with results: {known})")
    return scores


def aggregate(scores: list[Score], source: str = "latest") -> list[Row]:
    """One Row per cell and options; `latest` keeps each row's latest run, `all` every run. Best ARI first."""
    if source not in SOURCES:
        raise MihdError(f"results: {source!r} is not one of {', '.join(SOURCES)}")
    groups: dict[tuple, list[Score]] = defaultdict(list)
    for s in scores:
        groups[s.key].append(s)
    rows = []
    for group in groups.values():
        group.sort(key=lambda s: (s.when, s.run_id))
        if source == "latest":
            group = [s for s in group if s.run_id == group[-1].run_id]
        first = group[0]
        secs = [s.seconds for s in group if s.seconds is not None]
        rows.append(Row(first.cell, first.k, first.refine, first.random_init, Stat.of(s.ari for s in group),
                        Stat.of(s.nmi for s in group), len(group), sum(secs) / len(secs) if secs else None,
                        _cache_text(group), tuple(dict.fromkeys(s.run_id for s in group)), first.k_auto,
                        first.labelled_only))
    rows.sort(key=lambda r: (r.cell.slice, r.ari.mean is None, -(r.ari.mean or 0.0), r.cell.label))
    return rows


def _cache_text(group: list[Score]) -> str:
    states: dict[str, dict] = {}
    for s in group:
        for modality, status in s.cache:
            states.setdefault(modality, {})[status] = None
    return ", ".join(f"{m} {'/'.join(st)}" for m, st in states.items())


def render(rows: list[Row], fmt: str = "table") -> str:
    """The rows as an aligned table, CSV (full precision), a Markdown table or JSON."""
    if fmt not in FORMATS:
        raise MihdError(f"--format {fmt!r}: not one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps([{"label": r.cell.label, **r.to_dict(), "ari_values": list(r.ari.values),
                            "nmi_values": list(r.nmi.values)} for r in rows], indent=1) + "\n"
    if fmt == "csv":
        return csv_text(COLUMNS, [r.to_dict() for r in rows])
    header = ["SLICE", "GENE", "VISION", "VARIANT", "FUSION", "CLUSTER", "K", "REFINE", "ARI", "NMI", "N",
              "SECONDS", "CACHE", "RANDOM INIT", "SPOTS", "RUN"]
    body = [[r.cell.slice, r.cell.gene, r.cell.vision or "-", r.cell.variant or "-", r.cell.fusion, r.cell.cluster,
             "-" if r.k is None else str(r.k), "yes" if r.refine else "no", stat_text(r.ari), stat_text(r.nmi), str(r.n),
             "-" if r.seconds is None else f"{r.seconds:.1f}", r.cache or "-", "yes" if r.random_init else "no",
             "labelled" if r.labelled_only else "all", r.run_ids[-1] + (f" +{len(r.run_ids) - 1}" if len(r.run_ids) > 1 else "")] for r in rows]
    return text_table(fmt, header, body, {"K", "ARI", "NMI", "N", "SECONDS"},
                      "no scored cells yet (run some: mihd run / mihd grid / mihd launch)")


def csv_text(columns: list[str], records: list[dict]) -> str:
    """Records as CSV at full precision: a missing value empty, a list of values joined by `;`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for d in records:
        writer.writerow(["" if d[c] is None else ";".join(map(str, d[c])) if isinstance(d[c], (list, tuple)) else d[c]
                         for c in columns])
    return buf.getvalue()


def text_table(fmt: str, header: list[str], body: list[list[str]], right: set[str], empty: str) -> str:
    """Rows as a Markdown table (`right`: the columns aligned right) or as aligned plain text (`empty` when
    there are none)."""
    if fmt == "markdown":
        rule = "|" + "|".join("---:" if h in right else "---" for h in header) + "|"
        lines = ["| " + " | ".join(header) + " |", rule]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body]) + "\n"
    if not body:
        return empty + "\n"
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    return "".join("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip() + "\n" for row in [header, *body])


def stat_text(stat: Stat) -> str:
    if stat.mean is None:
        return "-"
    return f"{stat.mean:.3f}" + (f" ± {stat.sd:.3f}" if stat.sd is not None else "")


def write_tables(root, slice_id: str | None = None, source: str = "latest") -> tuple[Path, Path]:
    """The results table (of one slice) as Markdown and CSV, side by side in `<root>/results/` under a new
    name each time (`<slice>-<date>-<time>.md|csv`, a later one never overwrites an earlier); returns both paths.
    A full or read-only workspace is one line naming --root."""
    from .workspace import resolve_root, write_error

    rows = aggregate(collect(root, slice_id), source)
    root = resolve_root(root)
    folder = root / RESULTS_DIR
    try:
        return _write_tables(rows, folder, slice_id)
    except OSError as exc:
        raise write_error(root, exc, "write the results tables", "no table was written") from None


def _write_tables(rows: list[Row], folder: Path, slice_id: str | None) -> tuple[Path, Path]:
    """Both tables or neither: a Markdown table whose CSV could not follow is taken back."""
    import time

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{slice_id or 'all'}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while (folder / f"{stem}.md").exists() or (folder / f"{stem}.csv").exists():
        n += 1
        stem = f"{slice_id or 'all'}-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    paths = (folder / f"{stem}.md", folder / f"{stem}.csv")
    try:
        for path, fmt in zip(paths, ("markdown", "csv")):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(render(rows, fmt))
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths


# -- fused embeddings ------------------------------------------------------------------------------------------
def fused_path(run_dir: Path, index: int) -> Path:
    return Path(run_dir) / FUSED_DIR / f"{int(index)}.npy"


def save_fused(run_dir: Path, index: int, array) -> Path:
    """Keep cell `index`'s fused embedding (spots x d, the spots it clustered) as float32, written atomically."""
    import numpy as np

    path = fused_path(run_dir, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(array, dtype=np.float32))
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # numpy's short write (a full disk) names no file: the error line should
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_fused(run_dir: Path, index: int):
    """Cell `index`'s fused embedding, or None when the run did not keep it."""
    import numpy as np

    path = fused_path(run_dir, index)
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise MihdError(f"{path}: unreadable fused embedding ({exc})") from None
