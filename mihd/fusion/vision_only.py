"""The vision-only baseline: the (profiled) vision embedding as it is."""

from __future__ import annotations


def fuse(gene, vision, ctx):
    return vision.array
