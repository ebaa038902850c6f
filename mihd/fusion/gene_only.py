"""The gene-only baseline: the (profiled) gene embedding as it is."""

from __future__ import annotations


def fuse(gene, vision, ctx):
    return gene.array
