"""`mihd extract` and the Python API go through one path: cache first, encoder only on a miss."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_one_line_error, run_mihd
from slice_factory import write_spaceranger

from mihd.cache import EmbeddingCache
from mihd.data import load_slice
from mihd.errors import MihdError
from mihd.extract import get_embedding


def test_cli_and_api_give_the_identical_embedding(demo_root):
    proc = run_mihd("extract", "demo", "--gene", "pca", root=demo_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("miss  demo/gene/pca/-  ") and "computed in" in proc.stdout
    adata = load_slice("demo", root=demo_root)
    cached = get_embedding(adata, "gene", "pca", root=demo_root)
    assert cached.status == "hit"
    fresh = get_embedding(adata, "gene", "pca", root=demo_root, override=True)
    assert fresh.status == "override"
    assert np.array_equal(cached.embedding.array, fresh.embedding.array)
    again = run_mihd("extract", "demo", "--gene", "pca", root=demo_root)
    assert again.stdout.startswith("hit  demo/gene/pca/-  ") and "loaded in" in again.stdout


def test_a_hit_never_builds_the_encoder(demo_root, monkeypatch):
    adata = load_slice("demo", root=demo_root)
    get_embedding(adata, "vision", "texture", root=demo_root)
    import mihd.encoders.handcrafted as handcrafted

    def explode(*args, **kwargs):
        raise AssertionError("encoder built on a cache hit")

    monkeypatch.setattr(handcrafted, "encode_texture", explode)
    assert get_embedding(adata, "vision", "texture", root=demo_root).status == "hit"


def test_cache_name_and_variant_are_separate_entries(tmp_path):
    write_spaceranger(tmp_path / "small")
    root = tmp_path / "ws"
    for args in (("--vision", "texture"), ("--vision", "texture", "--variant", "freq"),
                 ("--vision", "texture", "--cache-name", "texture_try2")):
        proc = run_mihd("extract", str(tmp_path / "small"), *args, root=root)
        assert proc.returncode == 0, proc.stderr
    names = sorted((m["name"], m["variant"]) for m in EmbeddingCache(root).entries("small"))
    assert names == [("texture", "freq"), ("texture", "standard"), ("texture_try2", "standard")]
    listing = run_mihd("cache", "ls", root=root).stdout
    assert "texture_try2" in listing and "60x75" in listing


def test_mlp_is_identical_on_repeated_cpu_runs(demo_adata, tmp_path):
    config = {"epochs": 20}
    a = get_embedding(demo_adata, "gene", "mlp", root=tmp_path / "a", config=config).embedding.array
    b = get_embedding(demo_adata, "gene", "mlp", root=tmp_path / "b", config=config).embedding.array
    assert a.shape == (demo_adata.n_obs, 64) and np.array_equal(a, b)


def test_changed_slice_recomputes(tmp_path):
    write_spaceranger(tmp_path / "s1")
    root = tmp_path / "ws"
    assert get_embedding(load_slice(tmp_path / "s1", root=root), "gene", "pca", root=root).status == "miss"
    write_spaceranger(tmp_path / "s1", seed=5)  # new counts under the same name
    assert get_embedding(load_slice(tmp_path / "s1", root=root), "gene", "pca", root=root).status == "stale"


def test_missing_cache_name_is_a_clear_error(demo_adata, tmp_path):
    with pytest.raises(MihdError, match="'scan_uni2': not an encoder"):
        get_embedding(demo_adata, "vision", "scan_uni2", root=tmp_path)


def test_bad_extract_arguments_are_one_line_errors(tmp_path):
    write_spaceranger(tmp_path / "noimage", image=False)
    root = tmp_path / "ws"
    assert_one_line_error(run_mihd("extract", str(tmp_path / "noimage"), "--vision", "texture", root=root),
                          "no H&E image", "--vision texture")
    assert_one_line_error(run_mihd("extract", str(tmp_path / "noimage"), "--vision", "vgg", root=root),
                          "--vision 'vgg'", "uni2")
    assert_one_line_error(run_mihd("extract", str(tmp_path / "noimage"), "--vision", "texture", "--variant", "blur", root=root),
                          "--variant 'blur'", "staig_strict")
    assert_one_line_error(run_mihd("extract", "nowhere", "--vision", "uni2", "--precision", "half", root=root),
                          "--precision 'half'", "bf16")  # before the slice is even looked for
    assert_one_line_error(run_mihd("run", "nowhere", "--gene", "pca", "--vision", "uni2", "--fusion", "concat",
                                   "--precision", "fp64", root=root), "--precision 'fp64'")


def test_a_hit_made_otherwise_than_explicitly_asked_is_refused_not_served(tmp_path):
    write_spaceranger(tmp_path / "s", n_spots=30)
    root, s = tmp_path / "ws", str(tmp_path / "s")
    first = run_mihd("extract", s, "--vision", "hipt", "--random-init", root=root)
    assert first.returncode == 0 and first.stdout.startswith("miss"), first.stderr
    assert_one_line_error(run_mihd("extract", s, "--vision", "hipt", "--random-init", "--precision", "bf16", root=root),
                          "holds fp32 embeddings, asked for bf16", "--override", "--cache-name")
    assert_one_line_error(run_mihd("extract", s, "--vision", "hipt", "--weights", str(tmp_path / "w.pth"), root=root),
                          "holds random-init weights, asked for --weights")
    assert run_mihd("extract", s, "--vision", "hipt", root=root).stdout.startswith("hit")  # nothing asked: served
    kept = run_mihd("extract", s, "--vision", "hipt", "--random-init", "--precision", "bf16", "--cache-name",
                    "hipt_bf16", root=root)
    assert kept.returncode == 0 and kept.stdout.startswith("miss"), kept.stderr
    listing = run_mihd("cache", "ls", root=root).stdout
    assert "hipt (random init)" in listing and "hipt_bf16 (random init) (bf16)" in listing
