"""Stage shares learned from a real finished run in a workspace: the next run of the same cell is weighed
by how that one spent its time, not by the defaults."""

import pytest

from conftest import run_mihd
from mihd.runs.eta import cell_plans
from mihd.runs.registry import Registry
from mihd.runs.stages import ShareBook, default_shares


def test_a_finished_run_teaches_the_stage_shares_of_its_cell(demo_root):
    proc = run_mihd("run", "demo", "--gene", "pca", "--fusion", "gene_only", root=demo_root)
    assert proc.returncode == 0, proc.stderr
    assert "cell 1/1 pca gene_only gmm" in proc.stderr and "ARI" in proc.stderr  # the live log lines
    registry = Registry(demo_root)
    try:
        registry.sync()
        (cells,) = registry.cells().values()
        sig = cells[0]["signature"]
        shares = ShareBook(registry).get(sig)
        assert shares is not None and sum(shares.values()) == pytest.approx(1.0)
        assert {"load", "cluster"} <= set(shares) and shares != default_shares("gene_only")
        (plan,) = cell_plans(["gene_only"], [sig], registry.durations(), {sig: shares})
        assert plan.shares == shares
        assert ShareBook(registry).get("demo|pca|-|-|never|gmm|true|local") is None  # no such run: defaults
    finally:
        registry.close()
