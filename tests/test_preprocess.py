import numpy as np
import pytest

from mihd.embedding import Embedding
from mihd.errors import MihdError
from mihd.fusion import STAIG_VISION, run_cell_arrays
from mihd.preprocess import apply_profile, parse


def _emb(n=60, d=12, modality="vision", name="texture", seed=0):
    rng = np.random.default_rng(seed)
    return Embedding(rng.normal(3.0, 5.0, (n, d)).astype(np.float32), {"modality": modality, "name": name},
                     np.array([f"s{i}" for i in range(n)]))


def test_profile_is_applied_in_order_and_recorded():
    raw = _emb()
    out = apply_profile(raw, ["standardize", "pca(4)", "l2"])
    assert out.array.shape == (60, 4)
    assert out.transforms == ("standardize", "pca(4)", "l2")
    np.testing.assert_allclose(np.linalg.norm(out.array, axis=1), 1.0, rtol=1e-5)
    assert raw.transforms == () and raw.array.shape == (60, 12)  # the raw embedding is untouched


def test_empty_profile_keeps_the_raw_embedding():
    raw = _emb()
    assert apply_profile(raw, ()) is raw


def test_pca_width_is_capped_by_the_input():
    assert apply_profile(_emb(d=5), ["pca(16)"]).array.shape == (60, 5)


def test_unknown_transform_is_a_one_line_error():
    with pytest.raises(MihdError, match="unknown; known: standardize"):
        parse("zscore")


def test_a_second_profile_is_refused():
    once = apply_profile(_emb(), ["standardize"])
    with pytest.raises(MihdError, match="double normalisation"):
        apply_profile(once, ["standardize"])


def test_classic_bug_alignment_done_upstream_then_standardised_again_by_the_method():
    """STAIG's image embedding aligned (StandardScaler -> PCA(16)) before the method, then the method's
    own profile standardises it again: caught before any training starts."""
    n = 60
    gene = _emb(n, 20, "gene", "hvg", seed=1)
    aligned = apply_profile(_emb(n, 30), list(STAIG_VISION))  # the config that should have gone to the method
    coords = np.random.default_rng(2).uniform(0, 1000, (n, 2))
    with pytest.raises(MihdError, match=r"refusing to apply standardize, pca\(16\) after standardize, pca\(16\)"):
        run_cell_arrays(gene, aligned, coords, fusion="staig_fusion", cluster="gmm", n_clusters=3)
