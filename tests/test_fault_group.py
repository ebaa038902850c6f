"""A lab's shared workspace: two users of one group, a setgid folder, umask 002. Files the tool makes are
group-writable; a file one user may not read is `unreadable (owner X)`, never `corrupt` and recomputed over;
removing another user's files asks for --force; killing another user's run is refused in one line.
Real users (useradd, as root); skipped where this is not root."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, assert_one_line_error

GROUP, USERS = "mihdlab", ("mihdann", "mihdbob")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to add two users of one group")


@pytest.fixture(scope="module")
def lab():
    """Two users of group mihdlab (made once, left for later runs) and a fresh setgid group folder."""
    if shutil.which("useradd") is None:
        pytest.skip("no useradd here")
    if subprocess.run(["getent", "group", GROUP], capture_output=True).returncode != 0:
        subprocess.run(["groupadd", GROUP], check=True)
    for user in USERS:
        if subprocess.run(["id", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "-M", "-g", GROUP, user], check=True)
    for user in USERS:  # the interpreter and the checkout must be reachable by both users
        try:
            as_user(user, Path("/nonexistent/ws"), "--help")
        except PermissionError:
            pytest.skip(f"{user} may not run {sys.executable} here (a folder on its path is private)")
    shared = Path(tempfile.mkdtemp(prefix="mihd-lab-", dir="/tmp"))
    os.chown(shared, 0, grp.getgrnam(GROUP).gr_gid)
    os.chmod(shared, 0o2775)
    for user in USERS:  # each user's host-local index (registry, cache index) of their own
        index = shared.parent / f"{shared.name}-index-{user}"
        index.mkdir()
        os.chown(index, pwd.getpwnam(user).pw_uid, grp.getgrnam(GROUP).gr_gid)
    root = shared / "ws"
    root.mkdir()
    os.chmod(root, 0o2775)
    yield root
    shutil.rmtree(shared, ignore_errors=True)
    for user in USERS:
        shutil.rmtree(shared.parent / f"{shared.name}-index-{user}", ignore_errors=True)


def as_user(user: str, root: Path, *args: str, python: tuple[str, ...] = ("-m", "mihd"),
            umask: int = 0o002) -> subprocess.CompletedProcess:
    """`mihd ARGS` (or `python PYTHON ARGS`) run by `user` with umask 002 (or `umask`), as a lab member would."""
    entry = pwd.getpwnam(user)

    def become():
        os.setgroups([entry.pw_gid])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        os.umask(umask)

    env = {**os.environ, "MIHD_ROOT": str(root), "HOME": str(root.parent),
           "MIHD_INDEX_DIR": str(root.parent.parent / f"{root.parent.name}-index-{user}")}
    return subprocess.run([sys.executable, *python, *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=REPO, preexec_fn=become)


def test_two_users_share_a_workspace(lab, demo_h5ad):
    ann, bob = USERS
    root = lab
    assert as_user(ann, root, "extract", "demo", "--gene", "pca").returncode == 0
    made = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert made, "nothing was made"
    for path in made:  # group-writable where the umask allows, in the group of the folder
        mode = path.stat().st_mode
        assert mode & stat.S_IWGRP and path.stat().st_gid == grp.getgrnam(GROUP).gr_gid, (path, oct(mode))

    # bob hits ann's entry
    hit = as_user(bob, root, "extract", "demo", "--gene", "pca")
    assert hit.returncode == 0 and hit.stdout.startswith("hit"), hit.stdout + hit.stderr

    # a run's log is group-writable too (was hard-coded 0644)
    run = as_user(ann, root, "launch", "--", "run", "demo", "--gene", "pca", "--fusion", "gene_only",
                  "--n-clusters", "3")
    assert run.returncode == 0, run.stderr
    logs = list((root / "runs").rglob("run.log"))
    assert logs and all(p.stat().st_mode & stat.S_IWGRP for p in logs), [oct(p.stat().st_mode) for p in logs]

    # ann's entry made unreadable to bob: unreadable (owner ann), never corrupt, never recomputed over
    meta = next((root / "embeddings" / "entries" / "demo").glob("gene~pca~-.json"))
    before = meta.read_bytes()
    os.chmod(meta, 0o600)
    listing = as_user(bob, root, "cache", "ls")
    assert listing.returncode == 0 and f"UNREADABLE (OWNER {ann.upper()})" in listing.stdout.upper(), listing.stdout
    verify = as_user(bob, root, "cache", "verify")
    assert "CORRUPT" not in verify.stdout and f"unreadable (owner {ann})" in verify.stdout, verify.stdout
    refused = as_user(bob, root, "extract", "demo", "--gene", "pca")
    assert_one_line_error(refused, f"unreadable (owner {ann})", "--cache-name")
    assert meta.read_bytes() == before and meta.stat().st_uid == pwd.getpwnam(ann).pw_uid
    os.chmod(meta, 0o664)

    # removing another user's files asks for --force, naming whose they are
    assert_one_line_error(as_user(bob, root, "cache", "rm", "demo"), f"made by {ann}", "--force")
    assert meta.exists()
    leftover = root / "embeddings" / "entries" / "demo" / "gene~pca~-~0-dead.npy"
    assert as_user(ann, root, "cache", "ls").returncode == 0
    subprocess.run(["runuser", "-u", ann, "--", "touch", "-d", "2000-01-01", str(leftover)], check=True)
    gc = as_user(bob, root, "cache", "gc")
    assert gc.returncode == 0 and f"{ann}: 1 files" in gc.stdout and "--force" in gc.stdout, gc.stdout
    assert leftover.exists()
    assert as_user(bob, root, "cache", "gc", "--force").returncode == 0 and not leftover.exists()
    run_dir = next((root / "runs").iterdir())
    assert_one_line_error(as_user(bob, root, "runs", "rm", run_dir.name), f"made by {ann}", "--force")
    assert run_dir.exists()
    for _ in range(600):  # the launched run ends by itself
        if (run_dir / "exit.json").exists():
            break
        time.sleep(0.5)
    removed = as_user(bob, root, "runs", "rm", "--force", run_dir.name)
    assert removed.returncode == 0 and not run_dir.exists(), removed.stdout + removed.stderr
    assert as_user(bob, root, "cache", "rm", "--force", "demo").returncode == 0 and not meta.exists()

    # killing another user's run is refused in one line and the run goes on; its owner kills it
    launched = as_user(ann, root, python=("-c", "import sys; sys.path.insert(0, 'tests'); from runs_helpers import "
                                                "launch_fake; print(launch_fake(sys.argv[1], '--seconds', 300))",
                                          str(root)))
    run_id = launched.stdout.strip()
    assert launched.returncode == 0 and run_id, launched.stderr

    def status() -> str:
        rows = json.loads(as_user(bob, root, "runs", "ls", "--json", "--all").stdout)
        return next(r["status"] for r in rows if r["id"] == run_id)

    for _ in range(120):
        if status() == "running":
            break
        time.sleep(0.5)
    refused = as_user(bob, root, "runs", "kill", run_id, "--grace", "1s")
    assert_one_line_error(refused, "belongs to another user")
    assert status() == "running"
    killed = as_user(ann, root, "runs", "kill", run_id, "--grace", "1s")
    assert killed.returncode == 0 and "status killed" in killed.stdout, killed.stdout + killed.stderr
