"""The launch dialog: clusterer, n-clusters, seeds, variant, backend, override, spatial refinement (on, as in
the recommended configuration, mihd.recommended), and when the run counts as overrunning: prefilled with the
limit its history implies (mihd.runs.overrun.overrun_limit), and whatever the field says, prefilled or typed,
is the plan's expect, the very time the run is judged by. It answers with the RunSpecs to launch."""

from __future__ import annotations

import shlex
from dataclasses import replace

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from mihd.encoders import VARIANTS
from mihd.errors import MihdError
from mihd.grid import CLUSTERERS, GridSpec, expected_for, launch_plans
from mihd.plan import RunSpec, parse_seeds, plan_argv
from mihd.present import fmt_duration
from mihd.recommended import RECOMMENDED
from mihd.runs.backends import backend_class, names, validate_options
from mihd.runs.durations import parse_duration
from mihd.runs.overrun import overrun_factor, overrun_limit

from ..text import Plain, plain
from ..widgets.toggles import MarkedCheckbox
from ..widgets.typed_select import TypedSelect
from ..wording import describe_expected
from .modal import PausingModal

CHROME_ROWS = 6  # the dialog's border (2), title and its margin (2), buttons and their margin (2)


def parse_options(text: str) -> dict:
    """`partition=gpu time=1:00:00 gres=gpu:1` -> dict (backend options, as the backend declares them)."""
    out = {}
    for tok in shlex.split(text or ""):
        key, sep, value = tok.partition("=")
        if not sep or not key:
            raise MihdError(f"options {tok!r}: expected key=value, e.g. partition=gpu")
        out[key.lstrip("-")] = value
    return out


class DialogBody(VerticalScroll, can_focus=False):
    """A dialog's middle: on a short terminal it scrolls (to the focused field), the title and buttons stay in
    view; never a stop of its own in the Tab order."""


class LaunchDialog(PausingModal["list[RunSpec] | None"]):
    BINDINGS = [Binding("ctrl+l", "launch", "Launch", id="launch.go", priority=True)]

    def __init__(self, spec: GridSpec, groups, what: str, entries: list[dict], history: dict,
                 skipped: list[str] = ()) -> None:
        super().__init__()
        self.spec, self.groups, self.what, self.skipped = spec, groups, what, list(skipped)
        self.entries, self.history = entries, history
        self._prefill = ""

    def compose(self) -> ComposeResult:
        n = sum(len(f) * len(c) for f, c in self.groups)
        with Vertical(id="dialog", classes="dialog"):
            yield Label(f"Launch {self.what}: {n} cell{'s' * (n != 1)} in {len(self.groups)} "
                        f"run{'s' * (len(self.groups) != 1)}", classes="dialog-title")
            with DialogBody(id="launch-body"):
                if self.skipped:  # said here, not in a toast that would cover the buttons
                    yield Static(f"skipping {', '.join(self.skipped)}: no weights here and nothing cached",
                                 id="launch-skipped")
                yield Plain(id="launch-cmd")  # holds what was typed
                with Grid(id="launch-form"):
                    yield Label("clusterer")
                    yield TypedSelect([(c, c) for c in CLUSTERERS], value=self.spec.cluster, allow_blank=False,
                                 id="cluster", compact=True)
                    yield Label("n clusters")
                    yield Input(placeholder="from the truth labels", id="n-clusters", type="integer", compact=True)
                    yield Label("seeds")
                    yield Input(placeholder="0 (5: seeds 0..4, each scored; 0,3: those two)", id="seeds", compact=True)
                    yield Label("variant")
                    yield TypedSelect([(v, v) for v in VARIANTS], value=self.spec.variant, allow_blank=False,
                                 id="variant", compact=True)
                    yield Label("backend")
                    yield TypedSelect([(b, b) for b in names()], value="local", allow_blank=False, id="backend",
                                 compact=True)
                    yield Label("options", id="options-label")
                    yield Input(id="options", compact=True)
                    yield Label("overrun after")
                    yield Input(placeholder="e.g. 5m (empty: judged by history)", id="expect", compact=True)
                    yield Label("")
                    with Horizontal(id="launch-checks"):
                        yield MarkedCheckbox("override cache", id="override", compact=True)
                        yield MarkedCheckbox("spatial refine", value=RECOMMENDED.refine, id="refine", compact=True)
                yield Static("", id="launch-error")
                yield Static("", id="launch-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Launch", variant="primary", id="go", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self._update(prefill=True)
        self._fit(self.app.size.height)
        self.query_one("#cluster").focus()  # the first field: Tab walks the form down to Launch

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, rows: int) -> None:
        """Cap the body in rows: a cap in vh left blank rows under the buttons on a short terminal (Textual
        sized the dialog from the body's whole content)."""
        self.query_one("#launch-body").styles.max_height = max(3, rows - CHROME_ROWS)

    def _choice(self, wid: str) -> str:
        return str(self.query_one(f"#{wid}", Select).value)

    def _update(self, prefill: bool = False) -> None:
        spec = replace(self.spec, cluster=self._choice("cluster"), variant=self._choice("variant"))
        backend = self._choice("backend")
        declared = backend_class(backend).options  # the field exists only for a backend with options
        for wid in ("#options", "#options-label"):
            self.query_one(wid).display = bool(declared)
        self.query_one("#options", Input).placeholder = " ".join(
            f"{o.name}={o.metavar or o.type.__name__.upper()}" for o in declared)
        self.query_one("#options", Input).tooltip = "\n".join(f"{o.name}: {o.help}" for o in declared if o.help)
        fusions = sorted({f for fs, _ in self.groups for f in fs})
        columns = sorted({c for _, cs in self.groups for c in cs})
        try:
            seeds = self._seeds()
        except MihdError:
            seeds = (0,)  # said when Launch is pressed
        exp = expected_for(spec, fusions, columns, self.entries, self.history, backend, n_seeds=len(seeds))
        expect = self.query_one("#expect", Input)
        if prefill or expect.value == self._prefill:  # not edited: follow the choices
            limit = overrun_limit(exp, overrun_factor())[0]
            self._prefill = fmt_duration(limit) if limit else ""
            expect.value = self._prefill
        plans = launch_plans(spec, self.groups, seeds=seeds, refine=self.query_one("#refine", Checkbox).value,
                             override=self.query_one("#override", Checkbox).value)
        cmds = [" ".join(["mihd", *plan_argv(plan)]) for plan in plans]
        self.query_one("#launch-cmd", Plain).update("\n".join(cmds))
        self.query_one("#launch-hint", Static).update(
            f"expected from history: {describe_expected(exp)}; flagged as overrun past the time above; "
            "ctrl+l or Launch starts it, Esc cancels")

    def on_select_changed(self, event: Select.Changed) -> None:
        if self.is_mounted:
            self._update()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if self.is_mounted:
            self._update()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "seeds" and self.is_mounted:
            self._update()

    def _seeds(self) -> tuple[int, ...]:
        text = self.query_one("#seeds", Input).value.strip()
        return parse_seeds(text, "seeds") if text else (0,)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self.action_launch()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_launch()

    def action_launch(self) -> None:
        try:
            req = self._request()
        except MihdError as exc:
            error = self.query_one("#launch-error", Static)
            error.update(f"[b $error]{plain(exc)}[/]")  # it quotes what was typed
            self.call_after_refresh(error.scroll_visible, animate=False)  # below the fold on a short terminal
            return
        self.dismiss(req)

    def _request(self) -> list[RunSpec]:
        n_text = self.query_one("#n-clusters", Input).value.strip()
        n_clusters = None
        if n_text:
            if not n_text.isdigit() or int(n_text) < 2:
                raise MihdError(f"n clusters {n_text!r}: expected a whole number of at least 2")
            n_clusters = int(n_text)
        expect_text = self.query_one("#expect", Input).value.strip()
        expect = parse_duration(expect_text, "overrun after") if expect_text else None
        backend = self._choice("backend")
        options = validate_options(backend, parse_options(self.query_one("#options", Input).value)) \
            if backend_class(backend).options else {}
        spec = replace(self.spec, cluster=self._choice("cluster"), variant=self._choice("variant"))
        return launch_plans(
            spec, self.groups, backend=backend, n_clusters=n_clusters,
            override=self.query_one("#override", Checkbox).value, refine=self.query_one("#refine", Checkbox).value,
            expect=expect, backend_options=options, seeds=self._seeds())
