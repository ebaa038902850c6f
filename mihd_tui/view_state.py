"""Where the researcher was: the grid's slice, gene encoder, clusterer and variant, kept per user, host and
workspace (beside this host's index, never in the shared workspace), so a dashboard started again after an SSH
drop reattaches to the slice it showed, not to `demo`. A file that is missing or damaged means the defaults."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mihd.grid import ALL_SLICES, GridSpec
from mihd.jsonio import read_json, write_json_atomic
from mihd.workspace import host_index_dir

FILE = "tui_view.json"
FIELDS = ("slice", "gene", "cluster", "variant")


def restored(root: Path) -> GridSpec:
    """The grid spec last shown on `root` (its `all slices` cohort is filled by `fitted`)."""
    saved = read_json(host_index_dir(root) / FILE, {})
    given = {f: saved[f] for f in FIELDS if isinstance(saved, dict) and isinstance(saved.get(f), str) and saved[f]}
    return replace(GridSpec("demo"), **given)


def fitted(spec: GridSpec, slices: list[str]) -> GridSpec:
    """`spec` on the slice switcher's choices now: a slice no longer there falls back to the first choice; `all
    slices` takes the cohort."""
    name = spec.slice if spec.slice in slices else (slices[0] if slices else "demo")
    return spec if name == spec.slice and name != ALL_SLICES else spec.with_slice(name, slices)


def save(root: Path, spec: GridSpec) -> None:
    """Keep what is shown; a host folder that cannot be written costs only the memory of it."""
    try:
        host_index_dir(root).mkdir(parents=True, exist_ok=True)
        write_json_atomic(host_index_dir(root) / FILE, {f: getattr(spec, f) for f in FIELDS})
    except OSError:
        pass
