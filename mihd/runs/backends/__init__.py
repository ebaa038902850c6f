"""Backends by name: `local` here; others (e.g. `slurm`) are modules `backends/<name>.py` defining `Backend`."""

from __future__ import annotations

import importlib
import pkgutil

from ...errors import MihdError
from .base import GONE, QUEUED, RUNNING, UNKNOWN, Backend, RunState

__all__ = ["Backend", "RunState", "QUEUED", "RUNNING", "GONE", "UNKNOWN", "get_backend", "available"]

_instances: dict[str, Backend] = {}


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")


def get_backend(name: str) -> Backend:
    """The backend called `name` (one instance per process, so it may keep state between polls)."""
    if name not in _instances:
        if not name.isidentifier() or name == "base" or name not in available():
            raise MihdError(f"--backend {name!r}: unknown backend (available: {', '.join(available())})")
        _instances[name] = importlib.import_module(f"{__name__}.{name}").Backend()
    return _instances[name]
