"""Backends by name, from an explicit table, and the one place their options become flags, defaults and fields.

Each backend class declares its options once (`options`: a tuple of `Option`); from that declaration come
the `mihd launch` flags (one argument group per backend), the `<root>/<backend>.json` site defaults and
the launch dialog's key=value fields, all validated by the same code. Adding a backend (PBS, LSF) is one
module defining its class plus one line in `BACKENDS`; a test or plugin adds one with `register`.
"""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path
from typing import Any

from ...errors import MihdError
from ...jsonio import read_json
from ...workspace import backend_defaults_file
from .base import GONE, ORPHANED, QUEUED, RUNNING, UNKNOWN, Backend, Option, RunState

__all__ = ["Backend", "RunState", "Option", "QUEUED", "RUNNING", "ORPHANED", "GONE", "UNKNOWN", "BACKENDS", "names",
           "get_backend", "backend_class", "register", "add_option_arguments", "options_from_args", "defaults",
           "validate_options", "resolve_options", "outcome"]

BACKENDS: dict[str, str] = {
    "local": "mihd.runs.backends.local:Backend",
    "slurm": "mihd.runs.backends.slurm:Backend",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_classes: dict[str, type] = {}
_instances: dict[str, Backend] = {}
_TYPE_WORDS = {int: "a whole number", float: "a number", str: "text"}


def names() -> list[str]:
    return list(BACKENDS)


def register(name: str, target: str | type) -> None:
    """Add (or replace) backend `name`: a "module:Class" path or the class itself."""
    if not _NAME.match(name):
        raise MihdError(f"backend {name!r}: a name is lower-case letters, digits and _")
    BACKENDS[name] = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
    _classes.pop(name, None)
    _instances.pop(name, None)
    if not isinstance(target, str):
        _classes[name] = target


def _unknown(name: str) -> MihdError:
    return MihdError(f"--backend {name!r}: unknown backend (known: {', '.join(names())})")


def backend_class(name: str) -> type:
    """The class registered as `name` (imported on first use, so `mihd --help` imports no backend)."""
    if name not in BACKENDS:
        raise _unknown(name)
    if name not in _classes:
        module, _, attr = BACKENDS[name].partition(":")
        _classes[name] = getattr(importlib.import_module(module), attr)
    return _classes[name]


def get_backend(name: str) -> Backend:
    """The backend called `name` (one instance per process, so it may keep state between polls)."""
    if name not in _instances:
        _instances[name] = backend_class(name)()
    return _instances[name]


def outcome(name: str, handle: dict) -> dict | None:
    """A backend's last word on an ended run, kept in its handle.json: {"status": "failed" or None, "note":
    its own words}, e.g. Slurm's TIMEOUT; None when it said nothing (or `name` is no backend)."""
    if handle.get("outcome") or name not in BACKENDS:
        return handle.get("outcome")
    legacy = getattr(backend_class(name), "legacy_outcome", None)
    return legacy(handle) if legacy else None


def _options(name: str) -> dict[str, Option]:
    return {o.name: o for o in backend_class(name).options}


def _dest(opt: Option) -> str:
    return "backend_option_" + opt.flag.lstrip("-").replace("-", "_")


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """Every backend's options as flags, one group per backend. Values stay text here and are converted
    and validated by `options_from_args`, so a flag, a JSON default and a dialog field fail alike. A flag
    two backends declare (say --time) is added once, in the first one's group, and serves both."""
    seen: dict[str, str] = {}
    for name in names():
        group = parser.add_argument_group(f"--backend {name} (defaults from <root>/{name}.json)")
        for opt in backend_class(name).options:
            if opt.flag in seen:
                continue
            seen[opt.flag] = name
            also = [n for n in names() if n != name and any(o.flag == opt.flag for o in backend_class(n).options)]
            help_ = f"[{', '.join([name, *also])}] {opt.help}".rstrip()
            group.add_argument(opt.flag, dest=_dest(opt), metavar=opt.metavar, help=help_,
                               action="append" if opt.repeat else "store")


def options_from_args(backend_name: str, args: argparse.Namespace) -> dict:
    """The options given as flags for `backend_name`, validated; a flag only other backends take is an error."""
    own = {o.flag: o for o in _options(backend_name).values()}
    given = {}
    for name in names():
        for opt in backend_class(name).options:
            value = getattr(args, _dest(opt), None)
            if value is None or opt.flag in given:
                continue
            if opt.flag not in own:
                owners = [n for n in names() if any(o.flag == opt.flag for o in backend_class(n).options)]
                raise MihdError(f"{opt.flag}: an option of --backend {' / '.join(owners)}, "
                                f"not of --backend {backend_name}")
            given[opt.flag] = (own[opt.flag], value)
    return {opt.name: _check(opt, value, opt.flag) for opt, value in given.values()}


def validate_options(backend_name: str, options: dict, where: str | None = None) -> dict:
    """`options` (text from a dialog's key=value fields, or JSON values) converted and validated.

    Keys are option names or flag names (`sbatch_args`, `sbatch-arg`); None values are dropped.
    `where` names the source in messages (a file); by default each option is named by its flag."""
    known = _options(backend_name)
    by_key = {**{o.flag.lstrip("-"): o for o in known.values()}, **known}
    out = {}
    for key, value in options.items():
        opt = by_key.get(str(key).lstrip("-"))
        if opt is None:
            raise MihdError(f"{where + ': ' if where else ''}{key!r}: not an option of --backend {backend_name}"
                            f" (its options: {', '.join(known) or 'none'})")
        if value is not None:
            out[opt.name] = _check(opt, value, f"{where}: {opt.name}" if where else opt.flag)
    return out


def _check(opt: Option, value: Any, where: str) -> Any:
    if opt.repeat:
        items = shlex.split(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise MihdError(f"{where} {value!r}: expected a list")
        return [_check_one(opt, v, where) for v in items]
    return _check_one(opt, value, where)


def _check_one(opt: Option, value: Any, where: str) -> Any:
    if isinstance(value, (dict, list, bool)):
        raise MihdError(f"{where} {value!r}: expected {_TYPE_WORDS.get(opt.type, opt.metavar or 'one value')}")
    try:
        converted = opt.type(value)
    except (TypeError, ValueError):
        raise MihdError(f"{where} {value!r}: expected {_TYPE_WORDS.get(opt.type, opt.metavar)}") from None
    if opt.validate is None:
        return converted
    try:
        return opt.validate(converted)
    except ValueError as exc:
        raise MihdError(f"{where} {value!r}: {exc}") from None


def defaults(root: str | Path, backend_name: str) -> dict:
    """The site defaults in `<root>/<backend>.json` (absent: none), validated like flags."""
    path = backend_defaults_file(Path(root), backend_name)
    if not path.exists():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise MihdError(f"{path}: expected a JSON object of options ({', '.join(_options(backend_name))})")
    known = _options(backend_name)
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise MihdError(f"{path}: unexpected {unknown}; allowed keys: {', '.join(known)}")
    return validate_options(backend_name, data, where=str(path))


def resolve_options(root: str | Path, backend_name: str, options: dict) -> dict:
    """Site defaults overlaid with `options` (validated): a given option wins, repeatable ones add up."""
    base = defaults(root, backend_name)
    given = validate_options(backend_name, options)
    merged = {**base, **given}
    for opt in backend_class(backend_name).options:
        if opt.repeat:
            merged[opt.name] = [*base.get(opt.name, []), *given.get(opt.name, [])]
    return merged
