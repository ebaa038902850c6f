"""Shared fixtures: fresh workspaces, the demo slice (made once per session), the real DLPFC slice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DLPFC = Path(os.environ.get("MIHD_DLPFC", REPO.parent / "shared" / "data" / "dlpfc_151673"))
needs_dlpfc = pytest.mark.skipif(not DLPFC.is_dir(), reason="../shared/data/dlpfc_151673 is not present")


def _session_folder(tmp_path_factory, name: str, variable: str):
    """A fresh folder in the session's temp folder, named in `variable` for this process and every subprocess
    until the session ends (then the variable is as it was)."""
    folder = tmp_path_factory.mktemp(name)
    previous = os.environ.get(variable)
    os.environ[variable] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous


@pytest.fixture(scope="session", autouse=True)
def host_index(tmp_path_factory) -> Path:
    """Host-local indexes (registry, cache index) of the test session's workspaces live in its temp folder,
    for this process and every `mihd` subprocess, so tests leave nothing behind outside it."""
    yield from _session_folder(tmp_path_factory, "host-index", "MIHD_INDEX_DIR")


@pytest.fixture(scope="session", autouse=True)
def own_user_config(tmp_path_factory) -> Path:
    """The user's config folder (~/.config/mihd: notify.json) is the session's own, for this process and every
    subprocess, so the runs of the tests never reach the notification hooks of whoever runs them."""
    yield from _session_folder(tmp_path_factory, "user-config", "XDG_CONFIG_HOME")


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """An empty workspace root, also set as MIHD_ROOT for subprocesses."""
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.setenv("MIHD_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def demo_h5ad(tmp_path_factory) -> Path:
    from mihd.data.demo import ensure_demo

    return ensure_demo(tmp_path_factory.mktemp("demo-src"))


def with_demo(root: Path, demo_h5ad: Path) -> Path:
    """`root` made a workspace with the demo slice registered (copied, so tests never share cache state)."""
    from mihd.data.registry import register

    target = root / "demo" / "demo.h5ad"
    target.parent.mkdir(parents=True)
    shutil.copy(demo_h5ad, target)
    register(root, "demo", target)
    return root


@pytest.fixture
def demo_root(workspace, demo_h5ad) -> Path:
    """A workspace with the demo slice already made."""
    return with_demo(workspace, demo_h5ad)


@pytest.fixture(scope="session")
def demo_adata(demo_h5ad):
    from mihd.data import load_slice
    from mihd.data.registry import register

    root = demo_h5ad.parent.parent / "demo-ws"
    root.mkdir(exist_ok=True)
    register(root, "demo", demo_h5ad)
    return load_slice("demo", root=root)


@pytest.fixture
def mounts():
    """Mount points a test made; unmounted (lazily) after it."""
    made: list[Path] = []
    yield made
    for point in reversed(made):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path, mounts) -> Path:
    """A 2 MB tmpfs as the workspace."""
    from mount_helpers import mount

    point = tmp_path / "small"
    point.mkdir()
    mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point))
    mounts.append(point)
    return point


@pytest.fixture(scope="session")
def cached_template(tmp_path_factory, demo_h5ad):
    """A workspace with the demo slice and its pca + texture embeddings extracted once."""
    from mihd.data.registry import register

    root = tmp_path_factory.mktemp("tui-cached") / "ws"
    root.mkdir()
    register(root, "demo", demo_h5ad)
    for flag, name in (("--gene", "pca"), ("--vision", "texture")):
        subprocess.run([sys.executable, "-m", "mihd", "extract", "demo", flag, name, "--root", str(root)],
                       check=True, capture_output=True, timeout=600)
    return root


@pytest.fixture
def cached_root(workspace, cached_template):
    """A fresh copy of the cached demo workspace."""
    shutil.rmtree(workspace)
    shutil.copytree(cached_template, workspace)
    return workspace


def run_mihd(*args: str, root: Path | None = None, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`mihd ARGS` in a real subprocess, as a researcher would run it."""
    full_env = {**os.environ, **(env or {})}
    if root is not None:
        full_env["MIHD_ROOT"] = str(root)
    return subprocess.run([sys.executable, "-m", "mihd", *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=REPO)


def run_dir_of(*args: str, root: Path) -> Path:
    """The run dir of a finished `mihd run|grid ARGS --json`, which must succeed."""
    proc = run_mihd(*args, "--json", root=root)
    assert proc.returncode == 0, proc.stderr
    return Path(json.loads(proc.stdout)["run_dir"])


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2, a single `mihd: error:` line naming what is wrong, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and lines[-1].startswith("mihd: error:"), proc.stderr
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
