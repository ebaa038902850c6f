"""A study read back: which combination is best across slices, and how stable it is (`mihd results --across-slices`).

A combination is a cell without its slice (gene, vision, variant, fusion, clusterer, k, refine), plus the
random-init flag, so results made with random weights are never averaged with pretrained ones. Per slice
its score is the mean over seeds (and over runs with `all`) of that slice's cell, as `mihd results` shows it
(mihd.results.aggregate); across slices each slice then counts once: mean and sample sd (ddof=1; blank for one
slice) over the slices that have it, their number, the worst slice, and the rank by mean ARI (1 = best).
k is the one asked (`--n-clusters`); left to each slice's truth (the default), it reads `truth` and the
slices' own numbers of domains are pooled under it (the 12 DLPFC slices have 5 or 7 layers).

`plot` draws ARI per combination across slices (a box over the slices' points) for a paper, with matplotlib.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .errors import MihdError
from .results import FORMATS, Score, Stat, aggregate, collect, csv_text, stat_text, text_table

TRUTH_K = "truth"
COLUMNS = ("rank", "gene", "vision", "variant", "fusion", "cluster", "k", "refine", "random_init", "ari_mean",
           "ari_sd", "nmi_mean", "nmi_sd", "n_slices", "worst_slice", "worst_ari", "slices")


@dataclass(frozen=True)
class SliceScore:
    slice: str
    ari: float | None
    nmi: float | None
    n: int               # scores behind it (seeds x runs)


@dataclass(frozen=True)
class Combination:
    gene: str
    vision: str | None
    variant: str | None
    fusion: str
    cluster: str
    k: int | str         # the asked k, or TRUTH_K: each slice's number of truth domains
    refine: bool
    random_init: bool
    labelled_only: bool = False  # scored with --drop-unlabelled: another measure, never pooled with the rest

    @property
    def label(self) -> str:
        encoders = self.gene + (f"+{self.vision}" + (f"/{self.variant}" if self.variant != "standard" else "")
                                if self.vision else "")
        extra = ("" if self.k == TRUTH_K else f" k={self.k}") + (" refine" if self.refine else "") + \
            (" (random init)" if self.random_init else "") + (" (labelled spots)" if self.labelled_only else "")
        return f"{encoders} {self.fusion} {self.cluster}{extra}"


@dataclass(frozen=True)
class StudyRow:
    combo: Combination
    rank: int | None     # by mean ARI, 1 = best; None without an ARI
    ari: Stat            # over slices (each slice's mean over its seeds)
    nmi: Stat
    slices: tuple[SliceScore, ...]  # in slice order

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    @property
    def worst(self) -> SliceScore | None:
        scored = [s for s in self.slices if s.ari is not None]
        return min(scored, key=lambda s: s.ari) if scored else None

    def to_dict(self) -> dict:
        c, worst = self.combo, self.worst
        return {"rank": self.rank, "gene": c.gene, "vision": c.vision, "variant": c.variant, "fusion": c.fusion,
                "cluster": c.cluster, "k": c.k, "refine": c.refine, "random_init": c.random_init,
                "ari_mean": self.ari.mean, "ari_sd": self.ari.sd, "nmi_mean": self.nmi.mean, "nmi_sd": self.nmi.sd,
                "n_slices": self.n_slices, "worst_slice": worst.slice if worst else None,
                "worst_ari": worst.ari if worst else None,
                "slices": {s.slice: {"ari": s.ari, "nmi": s.nmi, "n": s.n} for s in self.slices}}


def combine(scores: list[Score], source: str = "latest") -> list[StudyRow]:
    """One StudyRow per combination, best mean ARI first (rank 1)."""
    per_slice: dict[Combination, list[SliceScore]] = defaultdict(list)
    for row in aggregate(scores, source):
        c = row.cell
        combo = Combination(c.gene, c.vision, c.variant, c.fusion, c.cluster, TRUTH_K if row.k_auto else row.k,
                            row.refine, row.random_init, row.labelled_only)
        per_slice[combo].append(SliceScore(c.slice, row.ari.mean, row.nmi.mean, row.n))
    rows = [StudyRow(combo, None, Stat.of(s.ari for s in slices), Stat.of(s.nmi for s in slices),
                     tuple(sorted(slices, key=lambda s: s.slice)))
            for combo, slices in per_slice.items()]
    rows.sort(key=lambda r: (r.ari.mean is None, -(r.ari.mean or 0.0), r.combo.label))
    return [StudyRow(r.combo, i + 1 if r.ari.mean is not None else None, r.ari, r.nmi, r.slices)
            for i, r in enumerate(rows)]


def across_slices(root=None, runs: list[str] | None = None, source: str = "latest") -> list[StudyRow]:
    """Every combination of the workspace (or of the given runs) across the slices that have it."""
    return combine(collect(root, None, runs), source)


def render(rows: list[StudyRow], fmt: str = "table") -> str:
    """The rows as an aligned table, CSV (full precision; per-slice ARIs as `slice:ari;...`), Markdown or JSON."""
    if fmt not in FORMATS:
        raise MihdError(f"--format {fmt!r}: not one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps([{"label": r.combo.label, **r.to_dict()} for r in rows], indent=1) + "\n"
    if fmt == "csv":
        return csv_text(COLUMNS, [{**d, "slices": [f"{s}:{'' if v['ari'] is None else v['ari']}" for s, v in
                                                   d["slices"].items()]} for d in (r.to_dict() for r in rows)])
    header = ["RANK", "GENE", "VISION", "VARIANT", "FUSION", "CLUSTER", "K", "REFINE", "ARI", "NMI", "N_SLICES",
              "WORST SLICE", "RANDOM INIT"]
    body = [["-" if r.rank is None else str(r.rank), r.combo.gene, r.combo.vision or "-", r.combo.variant or "-",
             r.combo.fusion, r.combo.cluster, str(r.combo.k), "yes" if r.combo.refine else "no", stat_text(r.ari),
             stat_text(r.nmi), str(r.n_slices), _worst(r), "yes" if r.combo.random_init else "no"] for r in rows]
    return text_table(fmt, header, body, {"RANK", "ARI", "NMI", "N_SLICES"},
                      "no scored cells yet (run a study: mihd grid A,B,C ... or mihd launch -- grid A,B,C ...)")


def _worst(row: StudyRow) -> str:
    worst = row.worst
    return "-" if worst is None else f"{worst.slice} {worst.ari:.3f}"


PLOT_DPI = 100


def plot(rows: list[StudyRow], out) -> Path:
    """ARI per combination across slices, best first: a box over each combination's slices with every slice
    as a point (labelled by slice when few), its mean marked; written as a PNG (temporary name, then rename)."""
    from .export import Staged, check_out

    target = check_out(out, "--png")
    shown = [r for r in rows if r.ari.mean is not None]
    if not shown:
        raise MihdError(f"--png {out}: no combination has an ARI to draw")
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    slices = sorted({s.slice for r in shown for s in r.slices})
    height = max(3.0, 0.42 * len(shown) + 1.4)
    fig = Figure(figsize=(9.0, height), dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.38, 1.0 / height, 0.44, 1 - 1.6 / height))
    ys = list(range(len(shown), 0, -1))
    values = [[s.ari for s in r.slices if s.ari is not None] for r in shown]
    ax.boxplot(values, positions=ys, vert=False, widths=0.55, showfliers=False,
               medianprops={"color": "0.35"}, boxprops={"color": "0.55"}, whiskerprops={"color": "0.55"},
               capprops={"color": "0.55"})
    cmap = colormaps["tab20"]
    for y, r in zip(ys, shown):
        for s in r.slices:
            if s.ari is not None:
                jitter = (slices.index(s.slice) - (len(slices) - 1) / 2) * min(0.5 / max(len(slices), 1), 0.08)
                ax.scatter([s.ari], [y + jitter], s=22, color=cmap(slices.index(s.slice) % 20), zorder=3,
                           label=s.slice)
        ax.scatter([r.ari.mean], [y], marker="D", s=30, facecolor="none", edgecolor="black", zorder=4)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{r.rank}. {r.combo.label} (n={r.n_slices})" for r in shown], fontsize=9)
    ax.set_xlabel("ARI (each point a slice; ◇ the mean over slices)")
    ax.grid(axis="x", color="0.9")
    ax.set_axisbelow(True)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if len(unique) <= 24:
        ax.legend(unique.values(), unique.keys(), loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
                  fontsize=8, title="slice")
    fig.suptitle(f"ARI across {len(slices)} slices, {len(shown)} combinations", fontsize=12)
    with Staged() as staged:
        tmp = staged.tmp(target)
        try:
            fig.savefig(tmp, format="png", dpi=PLOT_DPI)
        except OSError as exc:
            raise MihdError(f"--png {out}: cannot write ({exc.strerror or exc})") from None
        staged.commit()
    return target
