"""MIHD's recommended configuration: what `mihd run SLICE` runs when no method option is given, and what the
dashboard's launch dialog starts from.

Chosen on DLPFC 151673 and 151674 together (mean ARI over both slices and 3 seeds, then the sd over seeds),
never on one slice: docs/RECOMMENDED.md holds every candidate's scores and the commands that reproduce them.
A plain constant in a module of its own, so the dashboard reads it without importing the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Configuration:
    gene: str
    vision: str | None
    fusion: str
    cluster: str
    refine: bool

    @property
    def argv(self) -> list[str]:
        """The `mihd run` method options that ask for it."""
        vision = ["--vision", self.vision] if self.vision else []
        return (["--gene", self.gene, *vision, "--fusion", self.fusion, "--cluster", self.cluster]
                + (["--refine"] if self.refine else []))


RECOMMENDED = Configuration(gene="hvg", vision=None, fusion="gene_smooth", cluster="gmm", refine=True)
