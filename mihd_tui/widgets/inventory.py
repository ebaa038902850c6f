"""The cache inventory: one row per embedding (metadata only), keyed by slice|modality|name|variant, and
above them one row per entry being computed now (a lock held by `mihd extract`, a run, another host)."""

from __future__ import annotations


from mihd.inventory import InFlight, InventoryRow
from mihd.present import fmt_age, fmt_duration

from ..text import plain
from .fmt import text_bar
from .keyed_table import KeyedTable

COLUMNS = (("slice", "SLICE", 6), ("modality", "MODALITY", 8), ("name", "NAME", 12), ("variant", "VARIANT", 12),
           ("flags", "FLAGS", 11), ("shape", "SHAPE", 11), ("mb", "MB", 7), ("compute", "COMPUTE", 7),
           ("age", "AGE", 7))
FLAG_WORDS = {"random init": "random", "bf16": "bf16"}


def flag_words(flags) -> str:
    return " ".join(FLAG_WORDS.get(f, f) for f in flags)


def flag_note(flags) -> str:
    """The flags spelled out in the status line, in the warning colour."""
    return f" [b $warning]{plain(', '.join(flags))}[/]" if flags else ""


def computing_text(f: InFlight) -> str:
    """`45% ████░░` with its progress, else `computing`; `died` once its process is gone, `stalled` once its
    heartbeat stopped."""
    if f.dead:
        return "died"
    if f.stalled:
        return "stalled"
    if f.fraction is not None:
        return f"{100 * f.fraction:3.0f}% {text_bar(f.fraction, 5)}"
    return "computing"


class CacheInventory(KeyedTable):
    COLUMNS = COLUMNS
    STRETCH = "name"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.rows_by_key: dict[str, InventoryRow | InFlight] = {}
        self._slice_width = COLUMNS[0][2]

    @staticmethod
    def _cells(r: InventoryRow) -> tuple:
        return (r.slice, r.modality, r.name, r.variant, flag_words(r.flags),
                r.problem or r.shape, f"{r.mb:.1f}", fmt_duration(r.compute_s) if r.compute_s is not None else "",
                fmt_age(r.age_s))

    @staticmethod
    def _computing_cells(f: InFlight) -> tuple:
        return (f.slice, f.modality, f.name, f.variant, flag_words(f.flags), computing_text(f), "",
                fmt_duration(f.for_s), "now")

    def least_widths(self) -> list[int]:
        """Slice names are never cut: the slice column is as wide as the longest one shown."""
        return [self._slice_width, *(w for _, _, w in self.COLUMNS[1:])]

    def show(self, rows: list[InventoryRow], computing: list[InFlight] = ()) -> None:
        self.rows_by_key = {**{f.key: f for f in computing}, **{r.key: r for r in rows}}
        width = max([COLUMNS[0][2], *(len(r.slice) for r in self.rows_by_key.values())])
        self.sync([(f.key, self._computing_cells(f)) for f in computing] + [(r.key, self._cells(r)) for r in rows])
        if width != self._slice_width:
            self._slice_width = width
            self.relayout()

    def describe_current(self) -> str:
        """The status line for the selected row."""
        keys = list(self._shown)
        if not (0 <= self.cursor_row < len(keys)):
            return "cache: empty"
        r = self.rows_by_key.get(keys[self.cursor_row])
        if isinstance(r, InFlight):
            who = f"pid {r.pid} on {r.host}" + (f", run {r.run}" if r.run else "")
            since = f", for {fmt_duration(r.for_s)}" if r.for_s is not None else ""
            state = ("died: its process is gone (the next run that needs it computes it)" if r.dead
                     else f"stalled: no heartbeat for {fmt_duration(r.silent_s)}" if r.stalled
                     else f"{r.done}/{r.total}" if r.fraction is not None else "computing")
            return (f"[b]{r.modality} {plain(r.name)}[/] ({r.variant}) for {plain(r.slice)}: {state} "
                    f"({plain(who)}{since}){flag_note(r.flags)}")
        if r is None:
            return ""
        flags = flag_note(r.flags)
        made = f", computed in {fmt_duration(r.compute_s)}" if r.compute_s is not None else ""
        return (f"[b]{r.modality} {plain(r.name)}[/] ({r.variant}) for {plain(r.slice)}: "
                f"{plain(r.problem or r.shape)}, {r.mb:.1f} MB"
                f"{made}, {fmt_age(r.age_s)} old{flags}")
