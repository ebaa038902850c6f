"""`mihd refine scan` stores a refined vision embedding that runs like any other cache name."""

from __future__ import annotations

from conftest import run_mihd

from mihd.cache import EmbeddingCache


def test_scan_refined_embedding_is_cached_and_usable(demo_root):
    assert run_mihd("extract", "demo", "--vision", "texture", root=demo_root).returncode == 0
    proc = run_mihd("refine", "scan", "demo", "--vision", "texture", root=demo_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("miss  demo/vision/scan_texture/standard  3016x6")
    meta = {m["name"]: m for m in EmbeddingCache(demo_root).entries("demo")}["scan_texture"]
    assert meta["encoder"] == "scan" and meta["config"]["source"] == "texture"
    again = run_mihd("refine", "scan", "demo", "--vision", "texture", root=demo_root)
    assert again.stdout.startswith("hit  ")
    run = run_mihd("run", "demo", "--gene", "pca", "--vision", "scan_texture", "--fusion", "concat", root=demo_root)
    assert run.returncode == 0, run.stderr
    assert "scan_texture" in run.stdout and "vision hit" in run.stdout
