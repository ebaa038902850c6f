import numpy as np
import pytest

from mihd.errors import MihdError
from mihd.metrics import ari
from mihd.scan import mine_neighbours, scan_refine


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (3, 16))
    return np.vstack([c + rng.normal(0, 1, (50, 16)) for c in centres]), np.repeat(np.arange(3), 50)


def test_neighbours_are_by_inner_product_of_normalised_rows():
    x = np.array([[1.0, 0], [10.0, 0.1], [0, 1.0], [0.1, 5.0]])
    nn = mine_neighbours(x, k=2)
    assert set(nn[0]) == {0, 1} and set(nn[2]) == {2, 3}


def test_scan_returns_logits_that_recover_the_groups_and_is_seeded():
    x, truth = _blobs()
    a = scan_refine(x, 3, epochs=40, seed=1)
    b = scan_refine(x, 3, epochs=40, seed=1)
    assert a.shape == (150, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.exp(a).sum(1), 1.0)  # logits, not probabilities
    assert ari(a.argmax(1), truth) > 0.9


def test_scan_rejects_bad_cluster_counts():
    with pytest.raises(MihdError, match="--n-clusters"):
        scan_refine(np.zeros((5, 3)), 9)
