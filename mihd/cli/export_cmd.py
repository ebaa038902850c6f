"""`mihd export`: a run's labels and fused embeddings as .h5ad, and a predicted-beside-truth figure (mihd.export)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    from .common import add_root

    p = sub.add_parser("export", help="a run's cells as AnnData (.h5ad) for scanpy, and/or a figure (.png)",
                       description="--h5ad: the slice with obs['mihd_<cell>'] labels, the fused embedding in obsm, "
                                   "the run's spec and scores in uns. --png: predicted beside truth, one cell "
                                   "(the best-scoring of those selected), 1200 x 600 px.")
    p.add_argument("run", metavar="RUN", help="run id, id prefix or name")
    p.add_argument("--cell", dest="cells", action="append", metavar="CELL",
                   help="a cell by index (0, 1, ...) or label ('pca+texture concat gmm'); repeatable; default: all")
    p.add_argument("--h5ad", metavar="OUT", help="write the AnnData here")
    p.add_argument("--png", metavar="OUT", help="write the figure here")
    p.add_argument("--slice", dest="slice_source", metavar="SOURCE",
                   help="load the slice from here (name, Space Ranger folder or .h5ad) instead of the run's slice")
    add_root(p)
    p.set_defaults(handler=cmd_export)


def cmd_export(args) -> int:
    from ..export import export

    report = export(args.root, args.run, cells=args.cells, h5ad=args.h5ad, png=args.png,
                    slice_source=args.slice_source)
    if report["h5ad"]:
        print(f"wrote {report['h5ad']}: {len(report['cells'])} cell(s) of run {report['run']}")
    if report["no_embedding"]:
        print(f"mihd: note: run {report['run']} kept no fused embedding for {'; '.join(report['no_embedding'])}"
              " (made before runs saved them): obsm left out", file=sys.stderr)
    if report["png"]:
        print(f"wrote {report['png']}: {report['png_cell']}")
    return 0
