"""A lab installs once for everyone: a venv whose python sits under a folder other users cannot enter (root's
0700 home, where pyenv lives) fails them with `Permission denied`; one made from a shared python serves them.
`mihd.install_check` (run by scripts/setup.sh) tells the two apart as the other user finds them: a real venv, run
as a real other user (`nobody`), as root only (skipped otherwise: it needs a second user)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from mihd.install_check import closed_to_others

SHARED_PYTHON = "/usr/bin/python3"  # a system interpreter: every user may run it
needs_two_users = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser") or
                                     not os.access(SHARED_PYTHON, os.X_OK), reason="needs root, runuser and "
                                     f"{SHARED_PYTHON} to act as another user")


@pytest.fixture
def lab():
    """A folder outside pytest's own 0700 temp folder, open to the group and others as a lab's install is."""
    folder = Path(tempfile.mkdtemp(prefix="mihd-lab-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def as_nobody(python: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "nobody", "--", str(python), "-c", "print('ran')"],
                          capture_output=True, text=True, timeout=60)


@needs_two_users
def test_a_venv_from_a_shared_python_serves_other_users_and_one_under_a_closed_home_does_not(lab):
    subprocess.run([SHARED_PYTHON, "-m", "venv", "--without-pip", str(lab / "shared")], check=True)
    shared = lab / "shared" / "bin" / "python"
    assert closed_to_others(shared) is None and as_nobody(shared).stdout.strip() == "ran"

    home = lab / "home"  # as root's home is: 0700, with a python (pyenv's) inside
    home.mkdir(mode=0o700)
    private = home / "python3"
    shutil.copy2(os.path.realpath(SHARED_PYTHON), private)
    subprocess.run([str(private), "-m", "venv", "--without-pip", str(lab / "closed")], check=True)
    closed = lab / "closed" / "bin" / "python"
    ran = as_nobody(closed)
    assert ran.returncode != 0 and "Permission denied" in ran.stderr  # what a lab member met
    assert closed_to_others(closed) == f"{home} is drwx------: others cannot enter it"


def test_the_setup_scripts_check_says_what_to_do_in_one_line(lab):
    closed = lab / "closed"
    closed.mkdir(mode=0o700)
    proc = subprocess.run([sys.executable, "-m", "mihd.install_check", str(closed / "python")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert f"{closed} is drwx------" in proc.stderr and "scripts/setup.sh --python /usr/bin/python3" in proc.stderr
