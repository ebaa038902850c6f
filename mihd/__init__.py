"""MIHD: multimodal (histology + spatial transcriptomics) domain finding, with a cached pipeline."""

__version__ = "0.1.0"
