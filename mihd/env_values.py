"""MIHD's own environment variables, read where they are used. A bad value is never a traceback at import (the
default stands in there) nor silently ignored: the CLI's `check()` names it in one line before a command starts."""

from __future__ import annotations

import math
import os

from .compute import allowed_cores
from .errors import MihdError

LOCK_TIMEOUT_ENV = "MIHD_CACHE_LOCK_TIMEOUT"


def _seconds(name: str, environ) -> float | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < math.inf:  # nan too
        raise MihdError(f"{name}={raw!r}: expected a number of seconds > 0 (e.g. 120)")
    return value


def seconds(name: str, default: float, environ=os.environ) -> float:
    """`name`'s value in seconds, else `default` (unset, or a value `check()` refuses)."""
    try:
        return _seconds(name, environ) or default
    except MihdError:
        return default


def check(environ=os.environ) -> None:
    """A one-line MihdError for the first of our variables whose value means nothing (`MIHD_THREADS=abc`)."""
    _seconds(LOCK_TIMEOUT_ENV, environ)
    allowed_cores()  # reads MIHD_THREADS
