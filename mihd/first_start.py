"""What the dashboard's first start builds in a fresh workspace (the demo slice, then the embeddings its grid opens
on: the recommended gene encoder's and texture's) and which of those steps are still left. A build cut short (the
dashboard quit, the SSH link dropped) is resumed by the next start: the workspace still holds nothing but part of
that build, so the steps not done yet run again, and a step killed midway left nothing that blocks it (its cache
lock's holder is a dead process of this host, taken over at once). A workspace from a build with another gene encoder
holds an entry outside these steps, so it is left as it is.

Each step is a `python ...` argv run in a child process, so the dashboard never imports the heavy libraries.
`python -m mihd.first_start demo-slice ROOT` makes the demo slice with one-line errors like the CLI.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .cache import GENE_VARIANT, read_entries
from .data import DEMO
from .data.registry import registered
from .recommended import RECOMMENDED
from .workspace import runs_dir, slices_file


@dataclass(frozen=True)
class Step:
    what: str                      # shown while it runs: "making the demo slice"
    entry: tuple | None            # the cache entry it makes (slice, modality, name, variant); None: the slice
    args: tuple[str, ...]          # after `python`; ROOT stands for the workspace

    def argv(self, root: Path) -> list[str]:
        return [str(root) if a == "ROOT" else a for a in self.args]


STEPS = (
    Step("making the demo slice", None, ("-m", "mihd.first_start", "demo-slice", "ROOT")),
    Step(f"extracting {RECOMMENDED.gene} gene embeddings", (DEMO, "gene", RECOMMENDED.gene, GENE_VARIANT),
         ("-m", "mihd", "extract", DEMO, "--gene", RECOMMENDED.gene, "--root", "ROOT")),
    Step("extracting texture vision embeddings", (DEMO, "vision", "texture", "standard"),
         ("-m", "mihd", "extract", DEMO, "--vision", "texture", "--root", "ROOT")),
)


def steps_left(root: Path) -> list[Step]:
    """The first-start steps still to run: all of them in an empty workspace, the rest of them in one that
    holds only part of the build, none in a workspace with anything else (another slice, a run, another
    cached embedding) or with the whole build done."""
    root = Path(root)
    if runs_dir(root).is_dir() and any(runs_dir(root).iterdir()):
        return []
    slices = registered(root) if slices_file(root).exists() else {}
    if set(slices) - {DEMO}:
        return []
    have = {(e.get("slice"), e.get("modality"), e.get("name"), e.get("variant")) for e in read_entries(root)}
    if have - {s.entry for s in STEPS}:
        return []
    return [s for s in STEPS if (s.entry is None and DEMO not in slices) or (s.entry is not None and s.entry not in have)]


def main(argv: list[str]) -> int:
    from .errors import MihdError

    if len(argv) != 2 or argv[0] != "demo-slice":
        print("usage: python -m mihd.first_start demo-slice ROOT", file=sys.stderr)
        return 2
    from .data.demo import ensure_demo

    try:
        ensure_demo(Path(argv[1]))
    except MihdError as exc:
        print(f"mihd: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
