"""Concatenation of the two single-modality inputs, equally weighted, then one joint PCA.

The blocks are exactly what `gene_only` and `vision_only` cluster (gene PCs kept with their variance;
vision features standardised, then PCA), each scaled to total variance 1 so neither modality outweighs
the other by its width or units. The joint PCA to `WIDTH` keeps the strongest directions of the pair
and drops the noisiest; on the demo slice it lifts tied-GMM ARI from 0.61 to 0.82 (gene_only 0.65,
vision_only 0.54), on 151673 from 0.29 to 0.31.
"""

from __future__ import annotations

import numpy as np

from ._blocks import unit_block

WIDTH = 30


def fuse(gene, vision, ctx):
    from sklearn.decomposition import PCA

    from ..preprocess import PCA_SEED

    both = np.hstack([unit_block(gene.array), unit_block(vision.array)])
    return PCA(n_components=min(WIDTH, *both.shape), random_state=PCA_SEED).fit_transform(both)
