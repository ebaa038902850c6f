"""How true the ETA is on recorded runs (tests/fixtures/events/): each recording is replayed through
mihd.runs.eta as a watcher would have seen it at 25/50/75 % of its true duration, with the expected
times the history would give (the other recordings of the same cells), and once with no history at all.
Printed: the error of the predicted finish time (now + ETA - true end, as a share of the true duration;
`-` when the ETA said unknown) and the confidence at each moment.
Goal: median |error| at 50 % within 20 % (with history); no `high` estimate more than 2x off.

python benchmarks/bench_eta.py
python benchmarks/bench_eta.py --add RUN_DIR NAME GROUP NOTE   # keep a finished run dir as a recording
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from eta_fixtures import AT, median_abs, record, recordings, table  # noqa: E402
from mihd.present import fmt_duration  # noqa: E402


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.0f}%"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--add", nargs=4, metavar=("RUN_DIR", "NAME", "GROUP", "NOTE"),
                    help="keep a finished run dir as a recording (GROUP: recordings of the same cells)")
    args = ap.parse_args()
    if args.add:
        print(f"recorded {record(Path(args.add[0]), *args.add[1:])}")
    notes = {r.name: r.note for r in recordings()}
    for with_history in (True, False):
        rows = table(with_history)
        print(f"\n{'with the history of the other recordings' if with_history else 'with no history'}")
        head = "  ".join(f"{int(100 * q)}%: err  conf  " for q in AT)
        print(f"{'recording':<24} {'true':>6} {'expected':>8}   {head}")
        for row in rows:
            cols = "  ".join(f"{_pct(e):>9} {c:<7}" for e, c in zip(row["errors"], row["confidence"]))
            print(f"{row['name']:<24} {fmt_duration(row['seconds']):>6} {fmt_duration(row['expected']):>8}   {cols}")
        for k, q in enumerate(AT):
            errs = [r["errors"][k] for r in rows]
            print(f"  median |error| at {int(100 * q)}%: {100 * median_abs(errs):.0f}%"
                  f" (missing counts as 100%; {sum(e is None for e in errs)} missing)")
        worst_high = max((abs(e) for r in rows for e, c in zip(r["errors"], r["confidence"])
                          if c == "high" and e is not None), default=None)
        print(f"  worst `high` estimate: {'none made' if worst_high is None else f'{100 * worst_high:.0f}% off'}")
    print("\nrecordings:")
    for name, note in notes.items():
        print(f"  {name}: {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
