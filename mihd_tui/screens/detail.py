"""Run detail: the live log (follows the end, pauses when scrolled up, `/` searches, capped), stage and
progress, ETA, CPU/RAM/GPU sparklines, and once done the scores and the spatial maps of each cell."""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Input, Label, Log, ProgressBar, Static, TabbedContent, TabPane, Tabs
from textual.worker import get_current_worker

from mihd.domain_colours import legend, map_colours
from mihd.jsonio import read_json
from mihd.owners import owner_name
from mihd.present import fmt_bytes, fmt_duration
from mihd.rundir import LOG, RESULT
from mihd.runs.fanout import cell_dir
from mihd.runs.fanout_status import cells_summary
from mihd.runs.status import RunView

from ..messages import LogLines
from ..poller import Snapshot
from ..run_result import read_result, result_rows
from ..text import Plain, plain, plain_cells, say
from ..widgets.fmt import fmt_eta, fmt_pct
from ..widgets.footer import KeysFooter
from ..widgets.log_view import LogView
from ..widgets.run_facts import RunFacts
from ..widgets.spatial_map import SpatialMap
from ..widgets.sparkline import MetricSpark

LOG_CAP = 5000            # lines kept in the log view (and waiting while paused)
FIRST_READ = 256 * 1024   # on opening, only the end of a long log is read
MAX_BATCH = 512 * 1024    # bytes per read; a run writing faster is skipped ahead (and says so)
TAIL_EVERY = 0.25         # seconds between reads of a live run's log


class ResultLoaded(Message):
    def __init__(self, run_id: str, result: dict | None, peak: dict) -> None:
        super().__init__()
        self.run_id, self.result, self.peak = run_id, result, peak


class RunDetailScreen(Screen):
    """One screen for every run opened (the app installs it once): `show_run` turns it to another run. Building
    it anew took most of the time opening a run (and going back) on a loaded machine."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="detail.back"),
        Binding("k", "kill", "Kill", id="detail.kill", tooltip="kill this run (asks first)"),
        Binding("R", "rerun", "Rerun", id="detail.rerun", tooltip="start this run again with the same spec"),
        Binding("slash", "search", "Search", id="detail.search", key_display="/", tooltip="search the log"),
        Binding("n", "next_match(1)", "Next", id="detail.next_match", tooltip="next search match"),
        Binding("N", "next_match(-1)", "Prev", id="detail.prev_match", show=False, tooltip="previous match"),
        Binding("end", "follow", "Follow", id="detail.follow", tooltip="jump to the end and follow the log"),
        Binding("l", "tab('log-tab')", "Log", id="detail.tab_log", tooltip="show the log"),
        Binding("m", "tab('result-tab')", "Result", id="detail.tab_result", tooltip="show scores and spatial map"),
    ]

    def __init__(self, run_id: str, cell: int = 0) -> None:
        super().__init__()
        self._pending: deque[str] = deque(maxlen=LOG_CAP)
        self._flush = None
        self._forget(run_id, cell)

    def _forget(self, run_id: str, cell: int) -> None:
        """What the screen knows of a run, as before it has read anything of `run_id`."""
        self.run_id, self.cell = run_id, cell
        self.view: RunView | None = None
        self.result: dict | None = None
        self.peak: dict = {}  # usage.json's peaks, once a finished run's result is loaded
        self._pending.clear()
        self._pending_n = 0
        self._skipped = 0
        self._term = ""
        self._match: int | None = None
        self._result_asked = False
        self.log_cell: int | None = None  # a fanned-out grid's cell whose own run.log the Log tab shows

    def show_run(self, run_id: str, cell: int = 0) -> None:
        """Turn the screen to run `run_id` (its cell `cell` first in the result): what it showed is cleared and
        the previous run's readers stop."""
        for group in ("tail", "result", "cell-map"):
            self.workers.cancel_group(self, group)
        self._forget(run_id, cell)
        if not self.is_mounted:
            return  # compose and on_mount start from the new run
        say(self.query_one("#detail-title", Static), f"run {run_id}")
        for widget, blank in (("#detail-stage", ""), ("#detail-eta", ""), ("#log-status", ""),
                              ("#pred-title", "predicted"), ("#truth-title", "truth")):
            say(self.query_one(widget), blank)
        self.query_one("#detail-bar", ProgressBar).update(progress=0)
        for spark in self.query(MetricSpark):
            spark.set_history([])
        self.query_one(RunFacts).forget()
        self.query_one("#cells", DataTable).clear()
        for spatial in self.query(SpatialMap):
            spatial.clear()
        log = self.query_one(LogView)
        log.start_over()
        log.mark("")
        self.query_one("#search", Input).display = False
        self.query_one(TabbedContent).active = "log-tab"
        log.focus()
        self._flush.resume()
        if self.app.snapshot is not None:
            self.show_snapshot(self.app.snapshot)

    def on_screen_suspend(self) -> None:
        """Gone back from (not only covered by a dialog): the run's log is no longer read."""
        if self not in self.app.screen_stack:
            for group in ("tail", "result", "cell-map"):
                self.workers.cancel_group(self, group)
            self._flush.pause()

    def compose(self) -> ComposeResult:
        yield Static(f"run {self.run_id}", id="detail-title")
        with Horizontal(id="detail-progress"):
            yield Plain(id="detail-stage")  # the run's own words
            yield ProgressBar(total=100, show_eta=False, id="detail-bar")
            yield Label("", id="detail-eta")
        with Horizontal(id="detail-sparks"):
            yield MetricSpark("CPU", fmt_pct, id="spark-cpu")
            yield MetricSpark("RSS", fmt_bytes, id="spark-rss")
            yield MetricSpark("GPU", fmt_bytes, id="spark-gpu")
        with TabbedContent(id="detail-tabs", initial="log-tab"):
            with TabPane("Log", id="log-tab"):
                yield LogView(max_lines=LOG_CAP, id="log")
                yield Input(placeholder="search the log (Enter finds, Esc closes)", id="search", compact=True)
                yield Plain(id="log-status")  # holds the search typed
            with TabPane("Result", id="result-tab"):
                yield RunFacts(id="run-facts")
                yield DataTable(cursor_type="row", id="cells")
                with Horizontal(id="maps"):
                    with Vertical():
                        yield Label("predicted", id="pred-title")
                        yield SpatialMap(id="pred-map")
                    with Vertical():
                        yield Label("truth", id="truth-title")
                        yield SpatialMap(id="truth-map")
        yield KeysFooter()

    def on_mount(self) -> None:
        for tabs in self.query(Tabs):  # the tab strip never takes focus (l and m switch tabs)
            tabs.can_focus = False
        self.query_one("#search", Input).display = False
        table = self.query_one("#cells", DataTable)
        for key, title in (("cell", "CELL"), ("ari", "ARI"), ("nmi", "NMI"), ("secs", "TIME"), ("note", "NOTE")):
            table.add_column(title, key=key)
        self._flush = self.set_interval(0.5, self._flush_if_following)
        self.query_one(Log).focus()
        if self.app.snapshot is not None:
            self.show_snapshot(self.app.snapshot)

    # -- state ------------------------------------------------------------------------------------------
    def show_snapshot(self, snap: Snapshot) -> None:
        view = self.app.find_view(self.run_id)
        if view is None or not self.is_attached or not self.query("#detail-title"):
            return
        first = self.view is None
        self.view = view
        if first:
            self.tail(Path(view.run_dir))
            if not view.active:
                self.call_after_refresh(self.action_tab, "result-tab")
        self._show_view(view)
        if not view.active and not self._result_asked:
            self._result_asked = True
            self.load_result(self.run_id, Path(view.run_dir))

    def _show_view(self, v: RunView) -> None:
        where = f"job {v.job_id}" if v.job_id else f"pid {v.pid}" if v.pid else ""
        status = v.status + (" [b $warning]past expected time[/]" if v.overrun and v.active else "")
        if v.status == "queued" and v.reason:
            status += f" ({plain(v.reason)})"
        if v.status == "orphaned":
            status = "[b $warning]orphaned[/] (supervisor gone, the command still runs; k kills it)"
        if v.error:  # an error that starts with the state's own word ("unreadable (owner X)") replaces it
            said = f"[$error]{plain(v.error)}[/]"
            status = said if v.error.startswith(v.status) else f"{status} {said}"
        if v.kill_signal:
            status += f" by {v.kill_signal}"
        say(self.query_one("#detail-title", Static),
            f"[b]{plain(v.label)}[/]  {status}  │  {v.id}  {v.backend} {where}"
            f"{' on ' + plain(v.host) if v.host else ''}")
        self.query_one(RunFacts).show(v)
        stage = f"{v.stage} {v.stage_done}/{v.stage_total}" if v.stage and v.stage_total else (v.stage or v.status)
        if v.n_cells > 1 and v.cell_index is not None and v.active:
            stage = f"cell {v.cell_index + 1}/{v.n_cells} {stage}"
        if v.cells and v.active:  # a fanned-out grid: its cells side by side, each in its own state
            stage = cells_summary(v.cells)
            self._show_cells(v.cells)
        say(self.query_one("#detail-stage", Plain), stage)
        self.query_one("#detail-bar", ProgressBar).update(progress=100 * (v.progress or 0))
        exp = f"expected {fmt_duration(v.expected_s)} ({v.expected_source})" if v.expected_s else "no expected time"
        eta = f" · ETA {fmt_eta(v.eta_s, v.eta_confidence)} ({v.eta_confidence})" if v.active else ""
        queued = f" · queued {fmt_duration(v.queued_s)}" if v.queued_s and v.queued_s >= 1 else ""
        say(self.query_one("#detail-eta", Label), f"{fmt_duration(v.elapsed)} · {exp}{eta}{queued}")
        hist = list(self.app.run_history.get(v.id, ()))
        for i, (wid, key) in enumerate((("#spark-cpu", "cpu_percent"), ("#spark-rss", "rss"), ("#spark-gpu", "gpu_mem"))):
            spark = self.query_one(wid, MetricSpark)
            spark.set_history([h[i] for h in hist])
            if not v.active and self.peak:
                spark.show_peak(self.peak.get(key))

    def _show_cells(self, cells) -> None:
        table = self.query_one("#cells", DataTable)
        table.clear()
        for c in cells:
            note = c.status + (f": {why}" if (why := c.late or c.reason or c.error) else "")  # late: Slurm ends it
            table.add_row(*plain_cells((c.label, "-" if c.ari is None else f"{c.ari:.3f}",  # a part's own words
                                  "-" if c.nmi is None else f"{c.nmi:.3f}", fmt_duration(c.elapsed), note)),
                          key=str(c.index))

    # -- the log ----------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="tail")
    def tail(self, run_dir: Path) -> None:
        """Read new bytes of run.log in batches and post them; skip ahead when a run floods it."""
        run_id = self.run_id
        worker = get_current_worker()
        path = run_dir / LOG
        offset, rest = None, b""
        while not worker.is_cancelled:
            try:
                size = os.path.getsize(path)
            except OSError:
                size = 0
            if offset is None or size < offset:  # first read, or the file was truncated
                offset, rest = max(0, size - FIRST_READ), b""
                skipped = offset
            else:
                skipped = 0
            if size - offset > MAX_BATCH:
                skipped += size - MAX_BATCH - offset
                offset, rest = size - MAX_BATCH, b""
            if size > offset:
                try:
                    with open(path, "rb") as fh:
                        fh.seek(offset)
                        data = fh.read(size - offset)
                except OSError as exc:  # another member's run.log (a umask 077): said, never a crash
                    why = f"owner {owner_name(path)}" if isinstance(exc, PermissionError) else exc.strerror or exc
                    self.post_message(LogLines(run_id, [f"run.log: unreadable ({why})"]))
                    return
                offset += len(data)
                parts = (rest + data).split(b"\n")
                rest = parts.pop()
                if skipped and parts:
                    parts = parts[1:]  # the first line was cut by skipping
                lines = [p.decode("utf-8", "replace").rsplit("\r", 1)[-1] for p in parts[-LOG_CAP:]]
                if lines or skipped:
                    self.post_message(LogLines(run_id, lines, skipped))
            view = self.view
            if view is not None and not view.active and size == offset:
                if rest:
                    self.post_message(LogLines(run_id, [rest.decode("utf-8", "replace")]))
                return
            time.sleep(TAIL_EVERY)

    def on_log_lines(self, message: LogLines) -> None:
        if message.run_id != self.run_id:
            return  # read for the run shown before
        log = self.query_one(Log)
        if message.skipped:
            self._skipped += message.skipped
        if log.line_count == 0 or log.is_vertical_scroll_end:
            self._write(message.lines)
        else:
            self._pending.extend(message.lines)
            self._pending_n += len(message.lines)
            self._status()

    def _write(self, lines: list[str]) -> None:
        log = self.query_one(Log)
        batch = [*self._pending, *lines]
        if self._skipped:
            batch.insert(0, f"… {fmt_bytes(self._skipped)} of run.log skipped to keep up …")
            self._skipped = 0
        self._pending.clear()
        self._pending_n = 0
        if batch:
            log.add_lines(batch[-LOG_CAP:])
        self._status()

    def _flush_if_following(self) -> None:
        log = self.query_one(Log)
        if (self._pending or self._skipped) and log.is_vertical_scroll_end:
            self._write([])
        else:
            self._status()  # scrolled away or back: the label says which

    def _status(self) -> None:
        log = self.query_one(LogView)
        if self._pending_n:
            follow = f"paused: {self._pending_n} new line{'s' * (self._pending_n != 1)} (End follows)"
        elif log.line_count and not log.is_vertical_scroll_end:
            follow = "paused: scrolled up (End follows)"
        else:
            follow = "following the end of run.log"
        parts = [follow] if self.log_cell is None else [f"cell {self.log_cell}'s own run.log (m, Enter: the grid's)", follow]
        if self._term:
            found = log.matches(self._term)
            parts.append(f"'{self._term}': " + (f"match {found.index(self._match) + 1} of {len(found)}, log line "
                                                  f"{self._match + 1} (n/N)" if self._match in found else "not found"))
        parts.append("w: unwrap" if log.wrap_lines else "←/→ · w: wrap")
        say(self.query_one("#log-status", Plain), "  ·  ".join(parts))

    def action_follow(self) -> None:
        self.query_one(TabbedContent).active = "log-tab"
        log = self.query_one(Log)
        log.scroll_end(animate=False, immediate=True)
        self._write([])
        log.focus()

    def action_search(self) -> None:
        self.query_one(TabbedContent).active = "log-tab"
        box = self.query_one("#search", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "search":
            self._term = event.value.strip()
            event.input.display = False
            self.query_one(Log).focus()
            self._match = None
            self.query_one(LogView).mark(self._term)
            if self._term:
                self.action_next_match(1)

    def on_key(self, event) -> None:
        box = self.query("#search").first(Input) if self.query("#search") else None
        if event.key == "escape" and box is not None and box.has_focus:
            box.display = False
            self.query_one(Log).focus()
            event.stop()

    def action_next_match(self, step: int) -> None:
        """To the next (step 1) or previous (-1) run.log line holding the term, after the current one, or
        from the top of the view; it becomes the current match."""
        if not self._term:
            return
        log = self.query_one(LogView)
        found = log.matches(self._term)
        if not found:
            self._match = None
        elif self._match in found:
            self._match = found[(found.index(self._match) + step) % len(found)]
        else:
            self._match = found[0] if step > 0 else found[-1]
        log.show_match(self._match)
        self._status()

    # -- the result -------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="result")
    def load_result(self, run_id: str, run_dir: Path) -> None:
        self.post_message(ResultLoaded(run_id, *read_result(run_dir)))

    def on_result_loaded(self, message: ResultLoaded) -> None:
        if message.run_id != self.run_id:
            return
        self.result, self.peak = message.result, message.peak
        if self.view is not None:
            self._show_view(self.view)
        table = self.query_one("#cells", DataTable)
        table.clear()
        cells = (self.result or {}).get("cells") or []
        if not cells:
            error = (self.result or {}).get("error")
            self.query_one("#pred-title", Label).update("no result" + (f": {plain(error)}" if error else ""))
            return
        for i, row in enumerate(result_rows(self.result)):
            table.add_row(*plain_cells(row), key=str(i))  # labels and errors from result.json: a run's own words
        table.move_cursor(row=min(self.cell, len(cells) - 1), animate=False)
        self._show_map(min(self.cell, len(cells) - 1))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a fanned-out grid's cell: the cell's own run.log in the Log tab; Enter on it again: the grid's."""
        if event.data_table.id != "cells" or self.view is None or not self.view.cells:
            return
        index = int(event.row_key.value)
        self.log_cell = None if self.log_cell == index else index
        self.query_one(LogView).start_over()
        self._pending.clear()
        self._pending_n = self._skipped = 0
        grid = Path(self.view.run_dir)
        self.tail(grid if self.log_cell is None else cell_dir(grid, index))
        self.action_tab("log-tab")

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "cells" and self.result:
            self._show_map(int(event.row_key.value))

    def _show_map(self, index: int) -> None:
        cells = (self.result or {}).get("cells") or []
        if (self.result or {}).get("slices") and 0 <= index < len(cells) and self.view is not None:
            self.load_cell_map(Path(self.view.run_dir), index, cells[index])  # a study: each cell's own slice
            return
        self._draw_map((self.result or {}).get("spots") or {}, cells[index] if 0 <= index < len(cells) else {})

    @work(thread=True, exclusive=True, group="cell-map")
    def load_cell_map(self, run_dir: Path, index: int, summary: dict) -> None:
        """A study cell's map from its own result.json (the study's holds no spots: they differ by slice);
        `summary` is the cell's entry in the study's result, read on the UI thread."""
        own = read_json(cell_dir(run_dir, index) / RESULT)
        own = own if isinstance(own, dict) else {}
        labels = ((own.get("cells") or [{}])[0] or {}).get("labels")
        if get_current_worker().is_cancelled:
            return  # another run shown meanwhile
        self.app.call_from_thread(self._draw_map, own.get("spots") or {},
                                  {**summary, "labels": labels})

    def _draw_map(self, spots: dict, c: dict) -> None:
        if not spots.get("x") or not c.get("labels"):
            self.query_one("#pred-title", Label).update("no spatial map for this cell")
            return
        pred, true = map_colours(spots, c["labels"])
        self.query_one("#pred-map", SpatialMap).set_spots(spots["x"], spots["y"], pred, legend(spots, c["labels"]))
        self.query_one("#truth-map", SpatialMap).set_spots(spots["x"], spots["y"], true)
        score = "" if c.get("ari") is None else f" · ARI {c['ari']:.3f}"  # first: a narrow map clips the rest
        flag = " [b $warning]random init[/]" if c.get("random_init") else ""
        self.query_one("#pred-title", Label).update(f"predicted{score} ({plain(c.get('fusion'))}, {plain(c.get('cluster'))}){flag}")
        self.query_one("#truth-title", Label).update("truth" if spots.get("truth") else "no truth labels")

    # -- actions -----------------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_kill(self) -> None:
        self.app.confirm_kill(self.run_id)

    def action_rerun(self) -> None:
        from ..run_actions import rerun

        rerun(self.app, self.run_id)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
        self.query_one(LogView if tab == "log-tab" else "#cells").focus()  # arrows scroll what is shown

