"""A launch from the dashboard checks a slice never loaded on this host without loading it in the dashboard's own
process: the check read the whole slice (hundreds of MB for a Visium section) and left anndata and h5py in the
dashboard for the rest of its life. A short-lived child loads it as the run will and hands its facts back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import psutil

from mihd.data import check_plan_slices
from mihd.data.registry import register
from mihd.errors import MihdError
from mihd.plan import Cell, RunSpec
from runs_helpers import kill_all, wait_for
from test_bad_slice import _h5ad, nothing_made

LAUNCH = """
import json, sys
import mihd_tui.app  # the dashboard, as it runs
from mihd.errors import MihdError
from mihd.plan import Cell, RunSpec
from mihd.runs.launch import launch  # what the dashboard's launch dialog calls

root, name = sys.argv[1:]
plan = RunSpec((Cell(name, "pca", None, "gene_smooth", "kmeans", None),), n_clusters=3)
try:
    said = launch(root, plan, cached=[False])
except MihdError as exc:
    said = "error: " + str(exc)
print(json.dumps([said, "anndata" in sys.modules]))
"""


def _dashboard_launch(root, name: str) -> tuple[str, bool]:
    """(the run id or `error: LINE`, whether anndata was loaded) of the dashboard's launch of slice `name`."""
    proc = subprocess.run([sys.executable, "-c", LAUNCH, str(root), name], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return tuple(json.loads(proc.stdout.splitlines()[-1]))


def test_the_dashboards_launch_of_a_slice_never_loaded_starts_it_without_loading_anndata(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    register(root, "section", _h5ad(tmp_path / "section.h5ad"))
    run_id, heavy = _dashboard_launch(root, "section")
    try:
        assert not run_id.startswith("error"), run_id
        assert not heavy
        assert (root / "runs" / run_id).is_dir()
    finally:
        kill_all(root, [run_id])


def test_a_bad_slice_never_loaded_is_the_loaders_one_line_in_the_dashboard_without_loading_anndata(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    register(root, "flat", _h5ad(tmp_path / "nospatial.h5ad", spatial=False))
    said, heavy = _dashboard_launch(root, "flat")
    assert said == (f"error: {tmp_path / 'nospatial.h5ad'} (slice flat): no spot coordinates (obsm['spatial']), "
                    "which --fusion gene_smooth needs")
    assert not heavy
    nothing_made(root)


def test_a_check_killed_before_it_said_anything_is_one_line_saying_so(tmp_path):
    """The out-of-memory killer may take the child that loads a big slice: the launcher says the slice could not be
    checked and why, in one line, and makes nothing."""
    root = tmp_path / "ws"
    root.mkdir()
    register(root, "section", _h5ad(tmp_path / "section.h5ad"))
    plan = RunSpec((Cell("section", "pca", None, "gene_smooth", "kmeans", None),), n_clusters=3)
    said: list[str] = []

    def check():
        try:
            check_plan_slices(root, plan)
        except MihdError as exc:
            said.append(str(exc))

    checking = threading.Thread(target=check)
    checking.start()
    wait_for(lambda: [p for p in psutil.Process().children() if "mihd.data.check_child" in p.cmdline()])[0].kill()
    checking.join(timeout=120)
    assert said == ["SLICE section: could not be checked (its check was killed by signal 9)"]
    nothing_made(root)
