"""`python -m mihd.data.check_child --root R --source SLICE [--truth-col C] [--fullres F]`: a slice never loaded on
this host, loaded in a short-lived process of its own for the launcher (data.checked.facts_in_child), so that the
launcher, the dashboard above all, never holds anndata, h5py nor a whole slice (hundreds of MB).

It loads the slice as the run will (`load_slice`, which notes its facts for the next launch) and prints the facts as
JSON on stdout, so they arrive even where the note cannot be written; a slice wrong inside is its one
`mihd: error: ` line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..compute import quiet_waiting
from ..errors import MihdError
from .checked import ERROR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mihd.data.check_child")
    parser.add_argument("--root", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--truth-col")
    parser.add_argument("--fullres")
    args = parser.parse_args(argv)
    quiet_waiting()  # before numpy loads
    from . import load_slice
    from .checked import facts_of

    try:
        facts = facts_of(load_slice(args.source, Path(args.root), args.truth_col, args.fullres))
    except MihdError as exc:
        print(f"{ERROR}{exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(facts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
