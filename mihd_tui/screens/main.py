"""The main screen: header, the fusion x vision grid, and tabs for runs, the cache inventory and GPUs.

On a wide terminal (WIDE columns or more) the cache inventory also stands beside the grid, so the
space a login-node terminal often has is used without a tab switch."""

from __future__ import annotations

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from mihd.encoders import VARIANTS
from mihd.grid import CLUSTERERS, DONE, Grid

from ..poller import Snapshot
from ..widgets.gpu_panel import GpuPanel
from ..widgets.grid_table import GridTable
from ..widgets.inventory import CacheInventory
from ..widgets.runs_table import RunsTable
from ..wording import DESCRIBE

WIDE = 150  # columns from which the cache inventory also shows beside the grid


def _cycle(options: list[str], current: str) -> str:
    return options[(options.index(current) + 1) % len(options)] if current in options else options[0]


class MainScreen(Screen):
    BINDINGS = [
        Binding("enter", "launch_cell", "Launch", id="main.launch_cell", show=False,
                tooltip="launch the cell under the cursor"),
        Binding("r", "launch_row", "Row", id="main.launch_row", tooltip="launch the fusion row (one grid run)"),
        Binding("c", "launch_column", "Column", id="main.launch_column", tooltip="launch the column (one grid run)"),
        Binding("a", "launch_all", "All", id="main.launch_all", tooltip="launch the whole grid as one run"),
        Binding("o", "open_run", "Open", id="main.open_run", tooltip="open the run of the selected cell or row"),
        Binding("k", "kill", "Kill", id="main.kill", tooltip="kill the selected run (asks first)"),
        Binding("s", "next_slice", "Slice", id="main.next_slice", tooltip="show the next slice"),
        Binding("g", "next_gene", "Gene", id="main.next_gene", tooltip="show the next gene encoder"),
        Binding("x", "next_cluster", "Clusterer", id="main.next_cluster", show=False,
                tooltip="show the next clusterer"),
        Binding("v", "next_variant", "Variant", id="main.next_variant", show=False,
                tooltip="show the next patch variant"),
        Binding("1", "tab('runs-tab')", "Runs tab", id="main.tab_runs", show=False),
        Binding("2", "tab('cache-tab')", "Cache tab", id="main.tab_cache", show=False),
        Binding("3", "tab('gpu-tab')", "GPU tab", id="main.tab_gpu", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="header")
        with Horizontal(id="top"):
            with Vertical(id="grid-box"):
                yield GridTable(id="grid")
                yield Static("loading…", id="cell-info")
            yield CacheInventory(id="side-inventory")
        with TabbedContent(id="tabs", initial="runs-tab"):
            with TabPane("Runs", id="runs-tab"):
                yield RunsTable(id="runs")
            with TabPane("Cache", id="cache-tab"):
                yield CacheInventory(id="inventory")
            with TabPane("GPU", id="gpu-tab"):
                yield GpuPanel(id="gpu")
        yield Footer()

    _ready = False

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "wide")

    def on_mount(self) -> None:
        self.query_one(GridTable).focus()
        self._header()
        self._ready = True
        if self.app.snapshot is not None:
            self.show_snapshot(self.app.snapshot)

    # -- showing --------------------------------------------------------------------------------------
    def show_snapshot(self, snap: Snapshot) -> None:
        if not self._ready or snap.spec != self.app.spec:
            return  # made for the previous choice; the next one follows at once
        if not self.query(GridTable):
            return  # the app is quitting and this screen's widgets are already gone
        self.query_one(GridTable).show(snap.grid)
        self.query_one(RunsTable).show(snap.views)
        for inventory in self.query(CacheInventory):
            inventory.show(snap.inventory)
        self.query_one(GpuPanel).show(snap.gpu, snap.gpu_reason)
        self._header(snap)
        self._cell_info()

    def _header(self, snap: Snapshot | None = None) -> None:
        spec = self.app.spec
        parts = [f"[b]{spec.slice}[/] · gene [b]{spec.gene}[/] · {spec.cluster} · {spec.variant}"]
        if snap is not None:
            counts = {}
            for v in snap.views:
                if v.active:
                    counts[v.status] = counts.get(v.status, 0) + 1
            over = sum(1 for v in snap.views if v.active and v.overrun)
            live = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no active runs"
            parts.append(live + (f", [b $warning]{over} overrun[/]" if over else ""))
            parts.append("GPU " + (f"{len(snap.gpu)}" if snap.gpu else "none"))
        if self.app.setup_note:
            parts.append(self.app.setup_note)
        parts.append(str(self.app.root))  # last: on a narrow terminal the path is what gets cut, not the state
        self.query_one("#header", Static).update("  │  ".join(parts))

    def _cell_info(self) -> None:
        table = self.query_one(GridTable)
        cur = table.current
        if cur is None or table.grid is None:
            return
        cs = table.grid[cur]
        where = f"[b]{cur[0]}[/] × [b]{cur[1]}[/]: "
        if cs.state == DONE:
            what = "no truth labels" if cs.ari is None else f"ARI {cs.ari:.3f}, NMI {cs.nmi:.3f}"
            what += " [b $warning](random-init weights)[/]" if cs.random_init else ""
        elif cs.state in ("running", "overrun"):
            what = f"{DESCRIBE[cs.state]}, {100 * (cs.progress or 0):.0f}%"
        else:
            what = DESCRIBE.get(cs.state, cs.state)
        if cs.previous_ari is not None and cs.state != DONE:
            what += f" (last ARI {cs.previous_ari:.3f})"
        hint = "  o: open run" if cs.run_id else ""
        self.query_one("#cell-info", Static).update(where + what + hint)

    def on_data_table_cell_highlighted(self, event: GridTable.CellHighlighted) -> None:
        if isinstance(event.data_table, GridTable):
            self._cell_info()

    # -- actions --------------------------------------------------------------------------------------
    def _grid(self) -> tuple[Grid, tuple[str, str]] | None:
        table = self.query_one(GridTable)
        if table.grid is None or table.current is None:
            self.app.notify("the grid is still loading", severity="warning")
            return None
        return table.grid, table.current

    def _focused_runs(self) -> bool:
        return isinstance(self.focused, RunsTable)

    def action_launch_cell(self) -> None:
        if self._focused_runs():
            return self.action_open_run()
        got = self._grid()
        if got:
            (fusion, column) = got[1]
            self.app.open_launch([fusion], [column], f"cell {fusion} × {column}")

    def on_data_table_row_selected(self, event: RunsTable.RowSelected) -> None:
        if isinstance(event.data_table, RunsTable):
            self.app.open_run(event.row_key.value)

    def on_data_table_cell_selected(self, event: GridTable.CellSelected) -> None:
        if isinstance(event.data_table, GridTable):
            event.stop()
            self.action_launch_cell()

    def action_launch_row(self) -> None:
        got = self._grid()
        if got:
            grid, (fusion, _) = got
            self.app.open_launch([fusion], grid.columns, f"row {fusion}")

    def action_launch_column(self) -> None:
        got = self._grid()
        if got:
            grid, (_, column) = got
            self.app.open_launch(grid.rows, [column], f"column {column}")

    def action_launch_all(self) -> None:
        got = self._grid()
        if got:
            grid = got[0]
            self.app.open_launch(grid.rows, grid.columns, "the whole grid")

    def _selected_run(self) -> str | None:
        if isinstance(self.focused, GridTable):
            got = self._grid()
            return got[0][got[1]].run_id if got else None
        return self.query_one(RunsTable).current

    def action_open_run(self) -> None:
        self.app.open_run(self._selected_run())

    def action_kill(self) -> None:
        self.app.confirm_kill(self._selected_run())

    def action_next_slice(self) -> None:
        snap = self.app.snapshot
        if snap:
            self.app.set_spec(slice=_cycle(snap.slices, self.app.spec.slice))
            self._header()

    def action_next_gene(self) -> None:
        snap = self.app.snapshot
        if snap:
            self.app.set_spec(gene=_cycle(snap.genes, self.app.spec.gene))
            self._header()

    def action_next_cluster(self) -> None:
        self.app.set_spec(cluster=_cycle(list(CLUSTERERS), self.app.spec.cluster))
        self._header()

    def action_next_variant(self) -> None:
        self.app.set_spec(variant=_cycle(list(VARIANTS), self.app.spec.variant))
        self._header()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        widget = {"runs-tab": RunsTable, "cache-tab": CacheInventory}.get(tab)
        if widget:
            self.query_one(widget).focus()

    def palette_commands(self):
        """Direct choices for the palette: each slice, gene encoder, clusterer and variant by name."""
        snap = self.app.snapshot
        for name in (snap.slices if snap else []):
            yield SystemCommand(f"Slice: {name}", "show this slice in the grid", lambda n=name: self.app.set_spec(slice=n))
        for name in (snap.genes if snap else []):
            yield SystemCommand(f"Gene encoder: {name}", "show this gene encoder", lambda n=name: self.app.set_spec(gene=n))
        for name in CLUSTERERS:
            yield SystemCommand(f"Clusterer: {name}", "show this clusterer", lambda n=name: self.app.set_spec(cluster=n))
        for name in VARIANTS:
            yield SystemCommand(f"Variant: {name}", "show this patch variant", lambda n=name: self.app.set_spec(variant=n))
