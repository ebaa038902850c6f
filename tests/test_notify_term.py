"""The terminal's own desktop notification (mihd.runs.notify_term) and the dashboard's alerts (mihd_tui.alerts):
the bytes, run-derived text stripped of controls, tmux passthrough, and each run's event told once."""

from types import SimpleNamespace

from mihd.runs.notify_term import notification, plain
from mihd_tui.alerts import Alerts

ESC, BEL = "\x1b", "\x07"


def test_osc9_by_default_osc777_for_foot_and_a_bell_always():
    assert notification("mihd", "run x failed", {}) == f"{ESC}]9;mihd: run x failed{BEL}{BEL}"
    assert notification("mihd", "body; more", {"TERM": "foot"}) == f"{ESC}]777;notify;mihd;body; more{BEL}{BEL}"
    both = notification("a;b", "c", {"MIHD_TERMINAL_NOTIFY": "both"})
    assert both == f"{ESC}]9;a,b: c{BEL}{ESC}]777;notify;a,b;c{BEL}{BEL}"  # a title's `;` cannot add a field
    assert notification("t", "b", {"VTE_VERSION": "7600", "TERM": "xterm-256color"}).startswith(f"{ESC}]777;")
    assert notification("t", "b", {"MIHD_TERMINAL_NOTIFY": "bell"}) == BEL
    assert notification("t", "b", {"MIHD_TERMINAL_NOTIFY": "off"}) == ""
    assert notification("4", "2", {}) == f"{ESC}]9; 4: 2{BEL}{BEL}"  # OSC 9;4 would set a progress bar instead


def test_inside_tmux_each_osc_is_wrapped_for_passthrough_and_the_bell_left_to_tmux():
    out = notification("mihd", "late", {"TMUX": "/tmp/tmux-0/default,1,0", "TERM": "foot"})
    assert out == f"{ESC}Ptmux;{ESC}{ESC}]9;mihd: late{BEL}{ESC}\\{BEL}"


def test_run_derived_text_cannot_end_the_sequence_or_start_its_own():
    label = f"evil{ESC}]52;c;cHduZWQ={BEL}\x9c\x9d{ESC}\\\nx\ty\x7f"
    assert plain(label) == "evil]52;c;cHduZWQ=\\ x y"  # printable leftovers are harmless without ESC
    out = notification("mihd", label, {"TMUX": "1", "MIHD_TERMINAL_NOTIFY": "both"})
    inner = out.removesuffix(BEL)
    assert inner.count(BEL) == 2 and "\x9c" not in out and "\x7f" not in out and "\n" not in out
    assert len(plain("x" * 5000)) == 200


def view(rid, status="running", overrun=False, late=None, error=None):
    return SimpleNamespace(id=rid, label=f"demo {rid}", status=status, active=status == "running", overrun=overrun,
                           late=late, error=error, reason=None, elapsed=75.0, exit_code=None)


def test_alerts_tell_each_run_once_and_not_what_was_so_at_start():
    alerts = Alerts(env={})
    assert alerts.new([view("old", status="failed", error="boom"), view("r1")]) == []  # the first snapshot
    got = alerts.new([view("old", status="failed", error="boom"),
                      view("r1", late="will hit its time limit 2:00:00 (projected 2:40:00)"),
                      view("r2", status="failed", error="CUDA out of memory")])
    assert [(e, t) for e, t, _ in got] == [
        ("late", "run 'demo r1' will hit its time limit 2:00:00 (projected 2:40:00) (running for 1m15s)"),
        ("failed", "run 'demo r2' failed: CUDA out of memory (after 1m15s)")]
    assert got[1][2] == f"{ESC}]9;mihd: run 'demo r2' failed: CUDA out of memory (after 1m15s){BEL}{BEL}"
    assert alerts.new([view("r1", late="x"), view("r2", status="failed", error="CUDA out of memory")]) == []
    assert [e for e, _, _ in alerts.new([view("r1", overrun=True), view("r3", status="killed")])] == ["overrun"]
