"""`mihd-tui [--root R] [--interval S]`: the MIHD dashboard. Small on purpose: screens and widgets do the
showing, `mihd` decides, and one polling thread (poller.py) gathers what they show."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import get_current_worker

from mihd.errors import MihdError
from mihd.first_start import steps_left
from mihd.grid import plan_launches, skipped_columns
from mihd.inventory import cached_inputs, inputs_cached
from mihd.runs.gpu import Gpu
from mihd.workspace import config_problems, is_writable, read_keymap, resolve_root

from .alerts import Alerts, config_notices
from .messages import Notice, SnapshotReady
from . import view_state
from .poller import Poller, Snapshot
from .text import words

HISTORY = 120  # samples of CPU/RSS/GPU kept per run for the sparklines
DETAIL = "run-detail"  # the name the run detail screen is installed under


def _flag(view) -> tuple[str, str]:
    """What the overrun banner offers a run for, once each: (id, "overrun") or (id, "late")."""
    return view.id, "overrun" if view.overrun else "late"


class MihdApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "mihd-tui"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
    ]

    def __init__(self, root: Path, interval: float = 3.0, gpu: Gpu | None = None, factor: float | None = None,
                 setup_demo: bool = True, kill_grace: float = 10.0) -> None:
        super().__init__()
        self.root = Path(root)
        self.interval = interval
        self.kill_grace = kill_grace
        self.poller = Poller(self.root, factor=factor, gpu=gpu)
        self.spec = view_state.restored(self.root)  # the slice shown last time: a reattach comes back to it
        self.snapshot: Snapshot | None = None
        self.run_history: dict[str, deque] = {}
        self._overrun_seen: set[tuple[str, str]] = set()
        self._overrun_queue: list[str] = []
        self.alerts = Alerts()
        self.writable = is_writable(self.root)
        self._setup_steps = steps_left(self.root) if setup_demo and self.writable else []
        self._setup_demo = bool(self._setup_steps)
        self._paused_by: set[str] = set()
        self._quitting = threading.Event()
        self._poll_thread: threading.Thread | None = None
        self._detail = None  # the run detail screen, made on the first run opened
        self.setup_note = ""

    # -- start and polling ------------------------------------------------------------------------
    def on_mount(self) -> None:
        keymap, _ = read_keymap(self.root)  # optional {binding id: keys}, e.g. {"kill": "K"}; bad entries keep theirs
        self.set_keymap(keymap)
        for line in config_problems(self.root):  # a wrong tui_keys.json, cache_from.json or slices.json entry
            self.notify(line, severity="warning", timeout=12)
        self.check_notify()
        from .screens.main import MainScreen

        self.push_screen(MainScreen())
        self.poll_loop()
        if self._setup_demo:
            self.setup_demo()

    def poll_loop(self) -> None:
        """Start the polling thread: a daemon thread, not a worker, so quitting never waits for a refresh
        under way (one can take seconds on a loaded machine); it only reads."""
        self._poll_thread = threading.Thread(target=self._poll, name="mihd-poll", daemon=True)
        self._poll_thread.start()

    def _poll(self) -> None:
        while not self._quitting.is_set():
            if not self.poller.paused.is_set():
                try:
                    snap = self.poller.snapshot(self.spec)
                except Exception as exc:  # keep polling; say what went wrong
                    snap = None
                    self.post_message(Notice(f"refresh failed: {type(exc).__name__}: {exc}", "error", wake=False))
                if snap is not None and not self._quitting.is_set():
                    self.post_message(SnapshotReady(snap))
            deadline = time.monotonic() + self.interval
            while not self._quitting.is_set() and time.monotonic() < deadline:  # short waits: quitting is prompt
                if self.poller.wake.wait(min(0.25, max(deadline - time.monotonic(), 0))):
                    break
            self.poller.wake.clear()
        self.poller.close()

    def on_unmount(self) -> None:
        self._quitting.set()

    def stop_polling(self, timeout: float) -> None:
        """Let a refresh under way end (up to `timeout` s), so the refresh thread closes its index connection."""
        self._quitting.set()
        if self._poll_thread is not None:
            self._poll_thread.join(timeout)

    def refresh_now(self) -> None:
        self.poller.wake.set()

    def pause_refresh(self, paused: bool, why: str = "dialog") -> None:
        """Modal dialogs that ask about something (kill, launch) pause the refresh, so it does not change
        under them; the refresh resumes when none holds it."""
        (self._paused_by.add if paused else self._paused_by.discard)(why)
        (self.poller.paused.set if self._paused_by else self.poller.paused.clear)()
        if not self._paused_by:
            self.refresh_now()

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        snap = message.snapshot
        first = self.snapshot is None
        self.snapshot = snap
        if first and view_state.fitted(self.spec, snap.slices) != self.spec:
            self.spec = view_state.fitted(self.spec, snap.slices)
            self.refresh_now()
        for v in snap.views:
            if v.active:
                self.run_history.setdefault(v.id, deque(maxlen=HISTORY)).append((v.cpu_percent, v.rss, v.gpu_mem))
        known = {v.id for v in snap.views} | set(snap.extra)
        for rid in [r for r in self.run_history if r not in known]:
            del self.run_history[rid]
        self._check_overruns(snap, first)
        self._alert(snap)
        for screen in self.screen_stack:
            if hasattr(screen, "show_snapshot"):
                screen.show_snapshot(snap)

    def notify(self, message: str, *, markup: bool = False, **kw) -> None:
        """Plain text unless asked: notices carry paths, labels and error texts, which are never markup, and
        never a control sequence either (`ESC[2J` reads `^[[2J`)."""
        super().notify(message if markup else words(message), markup=markup, **kw)

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, severity=message.severity, timeout=6 if message.severity != "error" else 10)
        if message.wake:
            self.refresh_now()

    # -- overrun ----------------------------------------------------------------------------------
    def _check_overruns(self, snap: Snapshot, first: bool) -> None:
        new = [v for v in snap.views if v.active and (v.overrun or v.late) and _flag(v) not in self._overrun_seen]
        self._overrun_seen.update(_flag(v) for v in new)
        late = [v for v in new if not v.overrun]  # told by the alerts; offered in the banner all the same
        self._overrun_queue += [v.id for v in late if not first]
        new = [v for v in new if v.overrun]
        if new and first:
            self.notify(f"{len(new)} run{'s are' if len(new) > 1 else ' is'} past the expected time "
                        "(marked !); k kills the selected run", severity="warning", timeout=8)
        elif new:
            for v in new:
                self.notify(f"run {v.id}: {v.label} is past its expected time", severity="warning", timeout=8)
                self._overrun_queue.append(v.id)

    def _alert(self, snap: Snapshot) -> None:
        """A run that turned late, overran or failed: a notice (an overrun has its own above) and the terminal's
        desktop notification, so a dashboard in a background (tmux) window is noticed too."""
        for event, text, raw in self.alerts.new(snap.views):
            if event != "overrun":
                self.notify(text, severity="error" if event == "failed" else "warning", timeout=12)
            if raw and not self.is_headless and self._driver is not None:
                self._driver.write(raw)  # as Textual's own bell and clipboard do

    @work(thread=True, group="notify-check")
    def check_notify(self) -> None:
        """notify.json's problems (a mail server down or refusing included: asked here, off the UI thread)."""
        for line in config_notices(self.root):
            self.post_message(Notice(line, "warning", wake=False))

    def next_overrun(self):
        """The next run to offer in the overrun banner (oldest flag first), or None; runs that ended meanwhile
        are dropped."""
        while self._overrun_queue:
            view = self.find_view(self._overrun_queue.pop(0))
            if view is not None and view.active:
                return view
        return None

    # -- actions shared by the screens --------------------------------------------------------------
    def find_view(self, run_id: str | None):
        if not run_id or self.snapshot is None:
            return None
        return next((v for v in self.snapshot.views if v.id == run_id), None) or self.snapshot.extra.get(run_id)

    def confirm_kill(self, run_id: str | None) -> None:
        from .screens.kill import KillDialog

        view = self.find_view(run_id)
        if view is None:
            self.notify("no run selected", severity="warning")
            return
        if not view.active:
            self.notify(f"run {view.id} is {view.status}: nothing to kill", severity="warning")
            return
        if self.refuse_read_only("kill"):
            return
        self.push_screen(KillDialog(view), lambda sig: sig and self.kill(view.id, sig))

    def refuse_read_only(self, what: str) -> bool:
        """On a read-only workspace nothing is launched or killed: say so in one line."""
        if self.writable:
            return False
        self.notify(f"read-only workspace {self.root}: cannot {what} here", severity="warning")
        return True

    @work(thread=True, group="kill")
    def kill(self, run_id: str, signal: str) -> None:
        from mihd.runs.kill import kill_run

        try:
            out = kill_run(self.root, run_id, signal=signal, grace=self.kill_grace)
        except MihdError as exc:
            self.post_message(Notice(str(exc), "error"))
            return
        extra = " (escalated to KILL)" if out.get("escalated") else ""
        self.post_message(Notice(f"run {run_id}: sent {signal}{extra}; now {out.get('status')}"))

    def open_launch(self, fusions: list[str], columns: list[str], what: str) -> None:
        from .screens.launch import LaunchDialog

        snap = self.snapshot
        if snap is None:
            self.notify("still loading; try again in a moment", severity="warning")
            return
        if self.refuse_read_only("launch"):
            return
        skipped = skipped_columns(snap.grid, fusions, columns)
        groups = plan_launches(self.spec, snap.grid, fusions, columns)
        if not groups:
            why = "no weights and nothing cached" if skipped else "this fusion needs a vision embedding"
            self.notify(f"{what}: nothing runnable here ({why})", severity="warning")
            return
        self.push_screen(LaunchDialog(self.spec, groups, what, snap.entries, snap.history, skipped),
                         lambda plans: plans and self.launch(plans, snap.entries))

    @work(thread=True, group="launch")
    def launch(self, plans: list, entries: list[dict]) -> None:
        """Launch each RunSpec (the screen keeps refreshing meanwhile); whether its inputs are cached is
        known from the inventory the dialog showed."""
        from mihd.plan import plan_argv
        from mihd.runs.launch import launch

        cached = cached_inputs(entries)
        for plan in plans:
            try:
                run_id = launch(self.root, plan, cached=[inputs_cached(c, cached) for c in plan.cells])
            except MihdError as exc:
                self.post_message(Notice(str(exc), "error"))
                return
            self.post_message(Notice(f"launched {run_id}: mihd {' '.join(plan_argv(plan))}"))

    def set_spec(self, **changes) -> None:
        self.spec = replace(self.spec, **changes)
        view_state.save(self.root, self.spec)
        self.refresh_now()

    def set_slice(self, name: str) -> None:
        """Show slice `name` (or `all slices`: every slice of the switcher) in the grid."""
        snap = self.snapshot
        self.spec = self.spec.with_slice(name, snap.slices if snap else [name])
        view_state.save(self.root, self.spec)
        self.refresh_now()

    def open_run(self, run_id: str | None, cell: int = 0) -> None:
        from .screens.detail import RunDetailScreen

        if not run_id:
            self.notify("no run here yet", severity="warning")
            return
        if self.find_view(run_id) is None:
            self.poller.want(run_id)
        if self._detail is None:  # one screen for every run: installed, so going back keeps it for the next
            self._detail = RunDetailScreen(run_id, cell)
            self.install_screen(self._detail, DETAIL)
        else:
            self._detail.show_run(run_id, cell)
        if self._detail not in self.screen_stack:
            self.push_screen(DETAIL)

    def action_help_quit(self) -> None:
        """Ctrl+C (a reflex) says which key quits: `q`, the one the footer shows."""
        self.notify("Press [b]q[/b] to quit (runs go on)", title="Do you want to quit?", markup=True)

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def get_system_commands(self, screen: Screen):
        """Every binding of the current screen, plus slice/gene/clusterer choices, in the palette."""
        yield from super().get_system_commands(screen)
        seen = set()
        for binding in [*screen.BINDINGS, *self.BINDINGS]:
            if not isinstance(binding, Binding) or binding.action in seen or not binding.description:
                continue
            seen.add(binding.action)
            target = screen if binding not in self.BINDINGS else self
            yield SystemCommand(binding.description, binding.tooltip or f"key: {binding.key_display or binding.key}",
                                lambda a=binding.action, t=target: self.call_later(t.run_action, a))
        if hasattr(screen, "palette_commands"):
            yield from screen.palette_commands()

    # -- first start ----------------------------------------------------------------------------------
    @work(thread=True, group="setup")
    def setup_demo(self) -> None:
        """Make the demo slice and its cheap embeddings in child processes (keeps this one light): the steps
        mihd.first_start says are left, so a build cut short resumes. Quitting meanwhile stops the step under
        way with TERM (a cache entry is whole or absent, its lock's dead holder is taken over) and never waits."""
        steps = [(step.what, step.argv(self.root)) for step in self._setup_steps]
        worker = get_current_worker()
        for what, args in steps:
            self.setup_note = f"first start: {what}…"
            self.post_message(Notice(self.setup_note, wake=True))
            with tempfile.TemporaryFile() as err:
                proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=err)
                while proc.poll() is None:
                    if worker.is_cancelled:
                        proc.terminate()
                        return
                    time.sleep(0.1)
                err.seek(0)
                lines = err.read().decode("utf-8", "replace").strip().splitlines()
            if proc.returncode != 0:
                self.setup_note = ""
                self.post_message(Notice(f"demo setup: {what} failed: {(lines or ['failed'])[-1]}", "error"))
                return
        self.setup_note = ""
        self.post_message(Notice("demo slice ready: pca and texture are cached; Enter on a cell launches it"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mihd-tui", description="MIHD dashboard: cache, grid, runs, GPUs")
    ap.add_argument("--root", help="workspace root (default: $MIHD_ROOT, else the checkout's cache/)")
    ap.add_argument("--interval", type=float, default=3.0, help="seconds between refreshes (default 3)")
    args = ap.parse_args(argv)
    try:
        if not args.interval > 0:
            raise MihdError(f"--interval {args.interval}: expected a positive number of seconds")
        root = resolve_root(args.root)
    except MihdError as exc:
        print(f"mihd-tui: error: {exc}", file=sys.stderr)
        return 2
    app = MihdApp(root, interval=args.interval)
    app.run()
    # The screen is restored and nothing is left to write: exit now. Tearing down the interpreter (every
    # snapshot, view and module freed one by one) took another half second with two grids running.
    app.stop_polling(timeout=0.5)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(app.return_code or 0)


if __name__ == "__main__":
    sys.exit(main())
