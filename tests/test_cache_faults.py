"""A full disk and a read-only workspace: one-line errors where a write is needed, nothing partial left
behind, and every reading command (listing, verify, hits, runs) keeps working. Real mounts (root)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_one_line_error, run_mihd
from mount_helpers import fill, mount

from mihd.cache import CacheKey, EmbeddingCache
from mihd.errors import MihdError
from mihd.workspace import is_writable


def test_a_full_disk_is_one_line_leaves_nothing_partial_and_reads_keep_working(small_disk, demo_h5ad):
    from mihd.data.registry import register

    root = small_disk
    register(root, "demo", demo_h5ad)  # the slice itself lives elsewhere
    small = np.arange(40, dtype=np.float32).reshape(10, 4)
    cache = EmbeddingCache(root)
    cache.put(CacheKey("demo", "gene", "tiny", "-"), small, [f"B{i}" for i in range(10)], fingerprint="fp")
    with pytest.raises(MihdError, match=r"no space left .* needed"):
        cache.put(CacheKey("demo", "vision", "big", "standard"), np.ones((1000, 1000), np.float32),
                  [f"B{i}" for i in range(1000)], fingerprint="fp")
    fill(root, leave=8192)
    proc = run_mihd("extract", "demo", "--vision", "texture", root=root)
    assert_one_line_error(proc, f"--root {root}", "no space left", "needed", "free")
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")], "a partial file was left behind"
    assert [m["name"] for m in EmbeddingCache(root).entries()] == ["tiny"]
    for args in (("cache", "ls"), ("cache", "verify"), ("cache", "gc"), ("runs", "ls")):
        done = run_mihd(*args, root=root)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stdout, done.stderr)
    found = EmbeddingCache(root).lookup(CacheKey("demo", "gene", "tiny", "-"), "fp")
    assert found.status == "hit" and np.array_equal(found.embedding.array, small)
    (root / "filler").unlink()
    assert run_mihd("extract", "demo", "--vision", "texture", root=root).stdout.startswith("miss")


def test_a_read_only_workspace_serves_reads_and_refuses_writes_in_one_line(demo_root, tmp_path, mounts):
    assert run_mihd("extract", "demo", "--gene", "pca", root=demo_root).returncode == 0
    ro = tmp_path / "ro"
    ro.mkdir()
    mount("--bind", str(demo_root), str(ro))
    mounts.append(ro)
    mount("-o", "remount,ro,bind", str(ro))
    assert not is_writable(ro) and is_writable(demo_root)
    listing = run_mihd("cache", "ls", root=ro)
    assert listing.returncode == 0 and "pca" in listing.stdout and "Traceback" not in listing.stderr, listing.stderr
    assert run_mihd("cache", "verify", root=ro).returncode == 0
    hit = run_mihd("extract", "demo", "--gene", "pca", root=ro)
    assert hit.returncode == 0 and hit.stdout.startswith("hit"), hit.stdout + hit.stderr
    assert_one_line_error(run_mihd("extract", "demo", "--vision", "texture", root=ro), f"--root {ro}", "read-only",
                          "--cache-from")
    assert_one_line_error(run_mihd("cache", "rm", "demo", root=ro), "read-only")
    assert_one_line_error(run_mihd("cache", "gc", root=ro), "read-only")
    # a workspace of one's own, reading the shared one: hits come from it, misses are written to one's own
    own = tmp_path / "own"
    own.mkdir()
    from mihd.data.registry import register

    register(own, "demo", demo_root / "demo" / "demo.h5ad")
    shared = run_mihd("extract", "demo", "--gene", "pca", "--cache-from", str(ro), root=own)
    assert shared.stdout.startswith("hit") and f"(from {ro})" in shared.stdout, shared.stdout + shared.stderr
    fresh = run_mihd("extract", "demo", "--vision", "texture", "--cache-from", str(ro), root=own)
    assert fresh.returncode == 0 and fresh.stdout.startswith("miss"), fresh.stderr
    assert [m["name"] for m in EmbeddingCache(own).entries()] == ["texture"]
    assert_one_line_error(run_mihd("extract", "demo", "--gene", "pca", "--cache-from", str(tmp_path / "none"), root=own),
                          "--cache-from")
