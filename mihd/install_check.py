"""Whether an install can serve a lab: every member must be able to run its interpreter. A venv made as root from
a python under a 0700 home (pyenv's /root/.pyenv) works for root alone; anyone else gets `bad interpreter:
Permission denied`. `python -m mihd.install_check [PYTHON]` says so in one line (scripts/setup.sh runs it).
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

FIX = "a lab installs from a python every member can run: scripts/setup.sh --python /usr/bin/python3"


def closed_to_others(python: str | os.PathLike) -> str | None:
    """Why users other than its owner cannot run `python` (the folder or file that shuts them out), else None."""
    target = Path(os.path.realpath(python))
    try:
        for folder in [*reversed(Path(python).absolute().parents), *reversed(target.parents)]:  # the venv, its python
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                return f"{folder} is {stat.filemode(mode)}: others cannot enter it"
        mode = target.stat().st_mode
    except OSError as exc:
        return f"{exc.filename}: {exc.strerror}"
    return None if mode & stat.S_IXOTH else f"{target} is {stat.filemode(mode)}: others cannot run it"


def main(argv: list[str]) -> int:
    python = argv[0] if argv else sys.executable
    why = closed_to_others(python)
    if why is None:
        return 0
    print(f"mihd: note: {python} runs {os.path.realpath(python)}; {why}, so only its owner can use this install; "
          f"{FIX}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
