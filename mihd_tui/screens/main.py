"""The main screen: header, the fusion x vision grid, and tabs for runs, the cache inventory and GPUs.

On a wide terminal (WIDE columns or more) the cache inventory also stands beside the grid, so the
space a login-node terminal often has is used without a tab switch."""

from __future__ import annotations

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static, TabbedContent, TabPane, Tabs

from mihd.encoders import VARIANTS
from mihd.grid import CLUSTERERS, Grid
from mihd.present import fmt_duration

from ..poller import Snapshot
from ..text import plain, say
from ..widgets.fmt import short_id
from ..widgets.footer import KeysFooter
from ..widgets.gpu_panel import GpuPanel
from ..widgets.grid_table import GridTable
from ..widgets.inventory import CacheInventory
from ..widgets.overrun_banner import OverrunBanner
from ..widgets.runs_table import RunsTable
from ..wording import cannot_run, describe_cell, history_text

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
        Binding("e", "export_results", "Export", id="main.export_results", show=False,
                tooltip="write the slice's results table (Markdown and CSV) into the workspace"),
        Binding("s", "next_slice", "Slice", id="main.next_slice", tooltip="show the next slice"),
        Binding("g", "next_gene", "Gene", id="main.next_gene", tooltip="show the next gene encoder"),
        Binding("x", "next_cluster", "Clusterer", id="main.next_cluster", show=False,
                tooltip="show the next clusterer"),
        Binding("v", "next_variant", "Variant", id="main.next_variant", show=False,
                tooltip="show the next patch variant"),
        Binding("slash", "filter_runs", "Filter runs", id="main.filter_runs", key_display="/", show=False,
                tooltip="filter the runs table (from anywhere on this screen)"),
        Binding("1", "tab('runs-tab')", "Runs tab", id="main.tab_runs", show=False),
        Binding("2", "tab('cache-tab')", "Cache tab", id="main.tab_cache", show=False),
        Binding("3", "tab('gpu-tab')", "GPU tab", id="main.tab_gpu", show=False),
        Binding("t", "overrun('TERM')", "TERM overrun", id="main.overrun_term",
                tooltip="kill the run the overrun banner shows (TERM, KILL after the grace period)"),
        Binding("K", "overrun('KILL')", "KILL overrun", id="main.overrun_kill",
                tooltip="kill the run the overrun banner shows at once"),
        Binding("w", "overrun('watch')", "Keep watching", id="main.overrun_watch",
                tooltip="close the overrun banner; the run stays flagged !"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="header")
        yield OverrunBanner(id="overrun")
        with Horizontal(id="top"):
            with Vertical(id="grid-box"):
                yield GridTable(id="grid")
            yield CacheInventory(id="side-inventory")
        yield Static("loading…", id="cell-info")  # the whole width, also beside the side inventory
        with TabbedContent(id="tabs", initial="runs-tab"):
            with TabPane("Runs", id="runs-tab"):
                yield RunsTable(id="runs")
            with TabPane("Cache", id="cache-tab"):
                yield CacheInventory(id="inventory")
            with TabPane("GPU", id="gpu-tab"):
                yield GpuPanel(id="gpu")
        yield KeysFooter()

    _ready = False

    def on_resize(self) -> None:
        self.set_class(self.size.width >= WIDE, "wide")

    def on_mount(self) -> None:
        for tabs in self.query(Tabs):  # the tab strip never takes focus: letters typed there would launch
            tabs.can_focus = False
        self.query_one(GridTable).focus()
        self._header()
        self._ready = True
        if self.app.snapshot is not None:
            self.show_snapshot(self.app.snapshot)

    # -- showing --------------------------------------------------------------------------------------
    def show_snapshot(self, snap: Snapshot) -> None:
        if not self._ready or snap.spec != self.app.spec:
            return  # made for the previous choice; the next one follows at once
        try:
            self.query_one(GridTable).show(snap.grid)
            self.query_one(RunsTable).show(snap.views, snap.spec)
            for inventory in self.query(CacheInventory):
                inventory.show(snap.inventory, snap.computing)
            self.query_one(GpuPanel).show(snap.gpu, snap.gpu_reason)
            self._header(snap)
            self._cell_info()
            self._follow_overrun()
        except NoMatches:
            return  # the app is quitting and this screen's widgets are going

    def _follow_overrun(self) -> None:
        """The banner follows its run; when the run has ended the next overrunning one (if any) takes it."""
        banner = self.query_one(OverrunBanner)
        view = self.app.find_view(banner.run_id)
        if view is not None and view.active and (view.overrun or view.late):  # a late flag may go again
            return banner.follow(view)
        before, nxt = banner.run_id, self.app.next_overrun()
        banner.follow(nxt) if nxt is not None else banner.clear()
        if banner.run_id != before:  # its keys come or go with it (the footer is redrawn only then)
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "overrun":  # its keys exist (and show in the footer) only while the banner does
            return self.query_one(OverrunBanner).run_id is not None
        return True

    def action_overrun(self, choice: str) -> None:
        banner = self.query_one(OverrunBanner)
        run_id = banner.run_id
        banner.clear()
        if choice in ("TERM", "KILL") and run_id and not self.app.refuse_read_only("kill"):
            self.app.kill(run_id, choice)
        self._follow_overrun()
        self.refresh_bindings()

    def _header(self, snap: Snapshot | None = None) -> None:
        spec = self.app.spec
        parts = [f"[b $warning]{plain(self.app.setup_note)}[/]"] if self.app.setup_note else []  # first: never cut
        if not self.app.writable:
            parts.append("[b $warning]read-only workspace[/]")
        parts.append(f"[b]{plain(spec.slice)}[/] · gene [b]{plain(spec.gene)}[/] · {spec.cluster} · "
                     f"{spec.variant}")
        if snap is not None:
            counts = {}
            for v in snap.views:
                if v.active:
                    counts[v.status] = counts.get(v.status, 0) + 1
            over = sum(1 for v in snap.views if v.active and v.overrun)
            late = sum(1 for v in snap.views if v.active and v.late and not v.overrun)
            live = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no active runs"
            parts.append(live + (f", [b $warning]{over} overrun[/]" if over else "")
                         + (f", [b $warning]{late} late[/]" if late else ""))
            parts.append("GPU " + (f"{len(snap.gpu)}" if snap.gpu else "none"))
        parts.append(plain(str(self.app.root)))  # last: on a narrow terminal the path is what gets cut, not the state
        say(self.query_one("#header", Static), "  │  ".join(parts))

    def _cell_info(self) -> None:
        """The status line speaks of the focused thing: the grid cell, the selected run or cache entry."""
        focused = self.focused
        if isinstance(focused, RunsTable):
            text = self._run_info(focused.current)
        elif isinstance(focused, CacheInventory):
            text = focused.describe_current()
        else:
            text = self._grid_cell_info()
        if text is not None:  # run words in it went through plain()
            say(self.query_one("#cell-info", Static), text)

    def _grid_cell_info(self) -> str | None:
        table = self.query_one(GridTable)
        cur = table.current
        if cur is None or table.grid is None:
            return None
        cs = table.grid[cur]
        hints = ["o: " + ("its runs" if len(cs.runs) > 1 else "open run")] if cs.runs else []
        hist = history_text(cs)
        return f"[b]{cur[0]}[/] × [b]{plain(cur[1])}[/]: {describe_cell(cs)}" + (f"  {hist}" if hist else "") \
            + ("  " + "  ".join(hints) if hints else "")

    def _run_info(self, run_id: str | None) -> str:
        v = self.app.find_view(run_id)
        if v is None:
            return "runs: none selected"
        what = {"orphaned": "orphaned (its supervisor is gone, the command still runs; k kills it)",
                "corrupt": f"corrupt: {plain(v.error or '')}", "unknown": f"unknown ({plain(v.reason or '')})", "unreadable": plain(v.error or "unreadable")}.get(
                    v.status, v.status)
        if v.status in ("failed", "lost") and v.error:
            what += f": {plain(v.error)}"
        if v.active and v.progress is not None:
            what += f" {100 * v.progress:.0f}%" + (" [b $warning]past its expected time[/]" if v.overrun else
                                                   f" [b $warning]{plain(v.late)}[/]" if v.late else "")
        when = f", {fmt_duration(v.elapsed)}" if v.elapsed else ""
        # how it stands first: at 80 columns a reason such as the OOM killer's must not be the part cut off
        return f"{what}{when} · [b]{plain(v.label)}[/] · run {short_id(v.id)}  Enter: open"

    def on_data_table_cell_highlighted(self, event: GridTable.CellHighlighted) -> None:
        if isinstance(event.data_table, GridTable):
            self._cell_info()

    def on_data_table_row_highlighted(self, event) -> None:
        self._cell_info()

    def on_descendant_focus(self, event) -> None:
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
        if not got:
            return
        grid, (fusion, column) = got
        cs = grid[(fusion, column)]
        what = f"cell {fusion} × {column}"
        if cs.state == "no weights":
            self.app.notify(f"{what}: {cannot_run(cs.reason)}", severity="warning")
        elif cs.active:
            from .modal import ConfirmDialog

            pct = f" ({100 * (cs.progress or 0):.0f}%)" if cs.progress is not None else ""
            self.app.push_screen(ConfirmDialog(
                f"{what} is {cs.state}{pct}", f"run {cs.run_id} computes it now. Start another run of it?",
                "Start another"), lambda yes: yes and self.app.open_launch([fusion], [column], what))
        else:
            self.app.open_launch([fusion], [column], what)

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
        if isinstance(self.focused, GridTable):
            got = self._grid()
            cs = got[0][got[1]] if got else None
            if cs is not None and len(cs.runs) > 1:
                from .cell_runs import CellRunsDialog

                snap = self.app.snapshot
                views = {v.id: v for v in (snap.views if snap else [])}
                self.app.push_screen(CellRunsDialog(cs, views), lambda run_id: run_id and self.app.open_run(run_id))
                return
        self.app.open_run(self._selected_run())

    def action_kill(self) -> None:
        self.app.confirm_kill(self._selected_run())

    def action_export_results(self) -> None:
        from ..run_actions import export_results

        export_results(self.app)

    def action_next_slice(self) -> None:
        snap = self.app.snapshot
        if snap:
            self.app.set_slice(_cycle(snap.slices, self.app.spec.slice))
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

    def action_filter_runs(self) -> None:
        self.action_tab("runs-tab")
        self.query_one(RunsTable).action_filter()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        widget = {"runs-tab": "#runs", "cache-tab": "#inventory"}.get(tab)  # the tab's table, not the side one
        if widget:
            self.query_one(widget).focus()

    def palette_commands(self):
        """Direct choices for the palette: each slice, gene encoder, clusterer and variant by name."""
        snap = self.app.snapshot
        for name in (snap.slices if snap else []):
            yield SystemCommand(f"Slice: {name}", "show this slice in the grid", lambda n=name: self.app.set_slice(n))
        for name in (snap.genes if snap else []):
            yield SystemCommand(f"Gene encoder: {name}", "show this gene encoder", lambda n=name: self.app.set_spec(gene=n))
        for name in CLUSTERERS:
            yield SystemCommand(f"Clusterer: {name}", "show this clusterer", lambda n=name: self.app.set_spec(cluster=n))
        for name in VARIANTS:
            yield SystemCommand(f"Variant: {name}", "show this patch variant", lambda n=name: self.app.set_spec(variant=n))
