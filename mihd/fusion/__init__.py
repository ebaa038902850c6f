"""Fusion methods: a registry of names -> FusionMethod, and `run_cell_arrays`, the one array path
from raw embeddings to labels that the pipeline calls.

A method declares its preprocessing profile (applied here, once, to the raw embeddings) and whether it
needs a vision embedding; its `fuse(gene, vision, ctx)` gets the profiled embeddings and returns the
fused spots x d array. Modules are imported only when a method runs (torch stays out of light callers).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..compute import check_device
from ..errors import MihdError
from ..preprocess import Profile, apply_profile

if TYPE_CHECKING:
    import numpy as np

    from ..embedding import Embedding

Progress = Callable[..., None]  # (stage, done, total, **fields such as loss=)
EARLY_STEPS = 10  # a training loop reports each of its first steps: its rate is measured within seconds


def _no_progress(stage: str, done: int, total: int, **fields) -> None:
    return None


@dataclass(frozen=True)
class FusionContext:
    """What a method may use besides the embeddings: full-res coords (obsm["spatial"]), seed, n_clusters,
    and the device a training method runs on (auto | cpu | cuda; see mihd.compute)."""

    coords: np.ndarray
    seed: int = 0
    n_clusters: int = 7
    device: str = "auto"
    progress: Progress = field(default=_no_progress)
    adata: object = None  # the scored spots' AnnData (raw counts, image): what the published baselines read


@dataclass(frozen=True)
class FusionMethod:
    name: str
    profile: Profile
    needs_vision: bool
    uses_vision: bool
    module: str
    description: str
    trains: bool = False  # trains a torch model on --device (the others never touch a device)
    clusters: bool = False  # assigns the domains itself: fuse returns (array, labels), the clusterer is not used
    own_refine: int | None = None  # its published pipeline's label refinement: each spot takes the majority label
                                   # of this many nearest spots, after the clusterer (before --refine, if given)

    @property
    def missing(self) -> str | None:
        """Why the method cannot run here (a baseline whose package is not installed, with the install line)."""
        from .baselines import missing

        return missing(self.name)

    def fuse(self, gene: Embedding, vision: Embedding | None, ctx: FusionContext):
        import numpy as np

        fn = getattr(importlib.import_module(self.module, __name__), "fuse")
        out = fn(gene, vision if self.uses_vision else None, ctx)
        labels = None
        if self.clusters:
            out, labels = out
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(gene.obs_names):
            raise MihdError(f"--fusion {self.name}: produced shape {out.shape} for {len(gene.obs_names)} spots")
        return (out, labels) if self.clusters else out


GENE_PCS = ("pca(30)",)                 # gene embeddings keep their variance: PCs are ordered by it
VISION_PCS = ("standardize", "pca(30)")  # vision features come in arbitrary units: standardise first
EQUAL_WIDTH = ("standardize", "pca(32)")
STAIG_VISION = ("standardize", "pca(16)")  # STAIG's alignment: StandardScaler -> PCA(16), random_state 42
# the field's baselines, each by its own package (mihd.fusion.baselines): they read the slice, not the embeddings
BASELINES = (
    FusionMethod("graphst", Profile(), False, False, ".graphst", "GraphST by graphst-modern (expression + spatial graph)",
                 trains=True, own_refine=50),  # its DLPFC tutorial's refine_label(radius=50)
    FusionMethod("stagate", Profile(), False, False, ".stagate", "STAGATE by stagate-modern (expression + spatial graph)", trains=True),
    FusionMethod("spagcn", Profile(), False, False, ".spagcn", "SpaGCN by spagcn-modern (expression + spatial graph + histology colour; its own clustering)", clusters=True),
)

FUSIONS = {
    m.name: m
    for m in (
        FusionMethod("gene_only", Profile(gene=GENE_PCS), False, False, ".gene_only", "gene embedding alone"),
        FusionMethod("gene_smooth", Profile(gene=GENE_PCS), False, False, ".gene_smooth", "gene PCs averaged with their 6 nearest spatial neighbours"),
        FusionMethod("vision_only", Profile(vision=VISION_PCS), True, True, ".vision_only", "vision embedding alone"),
        FusionMethod("concat", Profile(GENE_PCS, VISION_PCS), True, True, ".concat", "gene_only's and vision_only's inputs as equal-weight blocks, joint PCA(30)"),
        FusionMethod("mean", Profile(EQUAL_WIDTH, EQUAL_WIDTH), True, True, ".mean", "standardise + PCA(32) per modality, averaged"),
        FusionMethod("attention", Profile(EQUAL_WIDTH, EQUAL_WIDTH), True, True, ".attention", "learned per-spot modality weights (seeded torch)", trains=True),
        FusionMethod("staig_fusion", Profile(vision=STAIG_VISION), False, True, ".staig_fusion", "STAIG image-aided graph contrastive learning (gene-only form without vision)", trains=True),
        *BASELINES,
    )
}


def get_fusion(name: str) -> FusionMethod:
    if name not in FUSIONS:
        raise MihdError(f"--fusion {name!r}: unknown fusion method; known: {', '.join(FUSIONS)}")
    return FUSIONS[name]


def check_inputs(method: FusionMethod, gene: Embedding, vision: Embedding | None, coords) -> None:
    import numpy as np

    if method.needs_vision and vision is None:
        raise MihdError(f"--fusion {method.name}: needs a vision embedding (--vision)")
    n = len(gene.obs_names)
    if vision is not None and (len(vision.obs_names) != n or not np.array_equal(vision.obs_names, gene.obs_names)):
        raise MihdError(
            f"{gene.label} ({n} spots) and {vision.label} ({len(vision.obs_names)} spots): "
            "cached for different spot sets; re-extract one of them"
        )
    if coords is None or np.shape(coords) != (n, 2):
        raise MihdError(f"coords: expected ({n}, 2) full-resolution spot coordinates, got {np.shape(coords)}")


def run_cell_arrays(
    gene: Embedding,
    vision: Embedding | None,
    coords,
    *,
    fusion: str,
    cluster: str,
    n_clusters: int,
    refine: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
    device: str = "auto",
    adata=None,
):
    """Raw embeddings -> (labels, fused array, timings {"fuse", "cluster"} in seconds).

    Applies the method's profile once, fuses, clusters, then smooths the labels by the method's own
    refinement (FusionMethod.own_refine) and, with `refine`, by a 15-NN spatial majority vote. `device` is
    where the training methods (attention, staig_fusion) run; the others ignore it, so `--device cuda` fails
    only a method that would use the GPU.
    Pass embeddings of the spots to score (e.g. labelled spots only for the DLPFC protocol, where NA
    spots are dropped before the graph is built).
    """
    import numpy as np

    from .. import cluster as clustering

    progress = progress or _no_progress
    method = get_fusion(fusion)
    clustering.get_clusterer(cluster)  # fail on a bad name before any work
    if method.trains:
        check_device(device)  # a bad name, or cuda without a GPU: one line, before any work
    coords = np.asarray(coords, dtype=np.float64)
    check_inputs(method, gene, vision, coords)
    clustering.check_n_clusters(n_clusters, len(gene.obs_names))

    t0 = time.perf_counter()
    progress("fuse", 0, 1)
    g = apply_profile(gene, method.profile.gene)
    v = apply_profile(vision, method.profile.vision) if (vision is not None and method.uses_vision) else None
    ctx = FusionContext(coords=coords, seed=seed, n_clusters=n_clusters, device=device, progress=progress, adata=adata)
    fused = method.fuse(g, v, ctx)
    fused, own = fused if method.clusters else (fused, None)
    progress("fuse", 1, 1)
    t1 = time.perf_counter()

    progress("cluster", 0, 1)
    labels = own if own is not None else clustering.cluster(fused, cluster, n_clusters, seed=seed)
    if own is None and method.own_refine:
        labels = clustering.spatial_refine(labels, coords, k=method.own_refine)
    if own is None and refine:
        labels = clustering.spatial_refine(labels, coords)
    progress("cluster", 1, 1)
    t2 = time.perf_counter()
    return labels, fused, {"fuse": t1 - t0, "cluster": t2 - t1}
