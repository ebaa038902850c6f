"""Paths given on the command line, and what a slice or image path is, told from names and first bytes only
(no scanpy, no pixels).

A path that cannot be a slice (missing, a symbolic link loop, an empty folder, a folder without counts or
spatial/, an .h5ad that is not HDF5, a PNG) is refused in one line before a registration, a run dir or a
launched job is made from it; the loaders (spaceranger.py, `load_slice`) then say what is wrong inside.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import MihdError

COUNTS = ("filtered_feature_bc_matrix.h5", "filtered_feature_bc_matrix")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # at offset 0, or 512, 1024, 2048, ... after a user block
SIGNATURES = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"II*\x00": "a TIFF image",
              b"MM\x00*": "a TIFF image", b"\x1f\x8b": "a gzip file", b"PK\x03\x04": "a zip file"}


def resolved(text: str | os.PathLike, what: str) -> Path:
    """`text` made absolute, symbolic links resolved (it need not exist); a link loop is a MihdError naming `what`."""
    try:
        return Path(os.path.expanduser(text)).resolve()
    except (RuntimeError, OSError) as exc:  # Python < 3.13 raises RuntimeError on a loop
        raise MihdError(f"{what} {text}: cannot be resolved ({exc})") from None


def existing(text: str | os.PathLike, what: str) -> Path:
    """`text` resolved; missing, a symbolic link loop or unreachable is a one-line MihdError naming `what`."""
    try:
        return Path(os.path.expanduser(text)).resolve(strict=True)
    except FileNotFoundError:
        raise MihdError(f"{what} {text}: no such file or folder") from None
    except RuntimeError:  # Python < 3.13 on a symbolic link loop
        raise MihdError(f"{what} {text}: a symbolic link loop") from None
    except OSError as exc:
        raise MihdError(f"{what} {text}: cannot be reached ({exc.strerror})") from None


def check_source(text: str | os.PathLike, what: str = "SLICE") -> Path:
    """The resolved path of a Space Ranger output folder or an .h5ad file; anything else is a MihdError."""
    path = existing(text, what)
    if path.is_dir():
        try:
            names = {p.name for p in path.iterdir()}
        except OSError as exc:
            raise MihdError(f"{what} {path}: cannot be listed ({exc.strerror})") from None
        if not names & set(COUNTS):
            where = " in an empty folder" if not names else ""
            raise MihdError(f"{what} {path}: no counts found{where} (expected {COUNTS[0]} or a {COUNTS[1]}/ folder)")
        if not (path / "spatial").is_dir():
            raise MihdError(f"{what} {path}: no spatial/ folder (spot positions, scalefactors, images)")
        return path
    if not path.is_file() or path.suffix != ".h5ad":
        raise MihdError(f"{what} {path}: expected a Space Ranger output folder or an .h5ad file")
    if not _is_hdf5(path, what):
        raise MihdError(f"{what} {path}: {looks_like(path)}, not an .h5ad (an .h5ad is an HDF5 file)")
    return path


def check_image(text: str | os.PathLike, what: str = "--fullres") -> Path:
    """The resolved path of an image file the loaders can read (its header is read, not its pixels)."""
    path = existing(text, what)
    if not path.is_file():
        raise MihdError(f"{what} {path}: not a file")
    try:
        with open_image(path):
            pass
    except OSError:  # PIL's UnidentifiedImageError included
        raise MihdError(f"{what} {path}: not an image ({looks_like(path)})") from None
    return path


@contextmanager
def open_image(path: Path):
    """PIL's lazy image (header read; pixels on first use)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # full-resolution H&E scans are legitimately huge
    with Image.open(path) as im:
        yield im


def looks_like(path: Path) -> str:
    """What a file seems to hold, by its first bytes: `a PNG image`, `a text file`, `an empty file`, ..."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    if not head:
        return "an empty file"
    kind = next((kind for magic, kind in SIGNATURES.items() if head.startswith(magic)), None)
    if kind:
        return kind
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return f"a binary file of unknown format starting {head[:8]!r}"
    return "a text file"


def _is_hdf5(path: Path, what: str) -> bool:
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError as exc:
        raise MihdError(f"{what} {path}: cannot be read ({exc.strerror})") from None
    return False
