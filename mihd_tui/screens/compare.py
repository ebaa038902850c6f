"""Two runs' spatial maps side by side, with the truth beside them (`m` on one run, then on another).

Each side shows the best-scoring cell of its run to begin with; `a` and `b` step through the cells of the
first and the second run. Clusters take the colours of the truth domains they overlap most, so two results on
one slice can be compared colour for colour; each map carries its legend.
"""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from mihd.domain_colours import legend, map_colours
from mihd.errors import MihdError
from mihd.jsonio import read_json
from mihd.plan import Cell
from mihd.present import fmt_score
from mihd.rundir import RESULT

from ..text import plain
from ..widgets.spatial_map import SpatialMap


class ResultsRead(Message):
    def __init__(self, results: list[dict | None]) -> None:
        super().__init__()
        self.results = results


def scored_cells(result: dict | None) -> list[int]:
    """Indexes of the result's cells that have labels, best ARI first."""
    cells = (result or {}).get("cells") or []
    have = [i for i, c in enumerate(cells) if isinstance(c, dict) and c.get("labels")]
    return sorted(have, key=lambda i: (cells[i].get("ari") is None, -(cells[i].get("ari") or 0.0), i))


def cell_title(run_id: str, result: dict, index: int) -> str:
    """`ARI 0.822* random init  pca+texture concat gmm  ·  RUN`: what the map shows, its score first."""
    c = result["cells"][index]
    try:
        label = Cell.from_dict({**c, "slice": result.get("slice")}).label
    except MihdError:
        label = "?"
    ari = "no ARI" if c.get("ari") is None else f"ARI {fmt_score(c['ari'], bool(c.get('random_init')))}"
    if c.get("ari_sd") is not None:
        ari += f" ± {c['ari_sd']:.3f} ({len(c.get('seeds') or [])} seeds)"
    if c.get("random_init"):
        ari += " random init"
    return f"[b]{ari}[/]  {plain(label)}  ·  {run_id}"  # the score first: a narrow map cuts the end of its title


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back", id="compare.back"),
        Binding("a", "next_cell(0)", "Next cell (1st)", id="compare.next_a", tooltip="the first run's next cell"),
        Binding("b", "next_cell(1)", "Next cell (2nd)", id="compare.next_b", tooltip="the second run's next cell"),
    ]

    DEFAULT_CSS = """
    #compare-title { height: 1; background: $panel; padding: 0 1; }
    #compare-maps { height: 1fr; }
    #compare-maps Vertical { width: 1fr; height: 1fr; margin: 0 1; }
    #compare-maps Label { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, first: str, second: str) -> None:
        super().__init__()
        self.run_ids = (first, second)
        self.results: list[dict | None] = [None, None]
        self.choice = [0, 0]  # position in each run's scored cells

    def compose(self) -> ComposeResult:
        yield Static(f"maps side by side: {self.run_ids[0]}  and  {self.run_ids[1]}", id="compare-title")
        with Horizontal(id="compare-maps"):
            for side in ("first", "second", "truth"):
                with Vertical():
                    yield Label("loading…", id=f"{side}-title")
                    yield SpatialMap(id=f"{side}-map")
        yield Footer()

    def on_mount(self) -> None:
        dirs = []
        for run_id in self.run_ids:
            view = self.app.find_view(run_id)
            dirs.append(Path(view.run_dir) if view is not None else None)
        self.read(dirs)

    @work(thread=True, exclusive=True, group="compare")
    def read(self, dirs: list[Path | None]) -> None:
        self.post_message(ResultsRead([read_json(d / RESULT) if d is not None else None for d in dirs]))

    def on_results_read(self, message: ResultsRead) -> None:
        self.results = message.results
        self._show()

    def _show(self) -> None:
        truth_spots = None
        for side, (run_id, result, pos) in enumerate(zip(self.run_ids, self.results, self.choice)):
            name = ("first", "second")[side]
            scored = scored_cells(result)
            if not scored or not (result.get("spots") or {}).get("x"):
                self.query_one(f"#{name}-title", Label).update(f"{run_id}: no spatial map (no result yet)")
                continue
            index = scored[pos % len(scored)]
            spots, labels = result["spots"], result["cells"][index]["labels"]
            pred, _ = map_colours(spots, labels)
            self.query_one(f"#{name}-map", SpatialMap).set_spots(spots["x"], spots["y"], pred, legend(spots, labels))
            more = f"  (cell {pos % len(scored) + 1}/{len(scored)}, {'ab'[side]}: next)" if len(scored) > 1 else ""
            self.query_one(f"#{name}-title", Label).update(cell_title(run_id, result, index) + more)
            truth_spots = truth_spots or (spots if spots.get("truth") else None)
        if truth_spots is not None:
            truth = truth_spots["truth"]
            _, true = map_colours(truth_spots, [0] * len(truth))
            self.query_one("#truth-map", SpatialMap).set_spots(truth_spots["x"], truth_spots["y"], true)
            slices = {r.get("slice") for r in self.results if r}
            self.query_one("#truth-title", Label).update(
                "truth" + ("" if len(slices) == 1 else f" of {self.results[0].get('slice')} (the runs' slices differ)"))
        else:
            self.query_one("#truth-title", Label).update("no truth labels")

    def action_next_cell(self, side: int) -> None:
        self.choice[side] += 1
        self._show()

    def action_back(self) -> None:
        self.app.pop_screen()
