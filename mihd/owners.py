"""Whose files these are, in a lab's shared workspace (one group, several users): messages name the owner
of a file this user cannot read, and removals of another user's files ask for `--force`."""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def owner_name(path: Path) -> str:
    """Who owns `path` (user name, else uid)."""
    try:
        return user_name(Path(path).stat().st_uid)
    except OSError:
        return "unknown"


def other_owner(path: Path) -> str | None:
    """The user who owns `path` when it is not this one, else None (also when it is gone)."""
    try:
        uid = Path(path).stat().st_uid
    except OSError:
        return None
    return None if uid == os.getuid() else user_name(uid)
