"""The backend seam: an explicit table of backends, options declared once (flags, `<root>/<backend>.json`
defaults, the dialog's key=value fields), and a third backend added by a test alone, with no other module
touched, that shows in `mihd launch --help` and whose runs show in `mihd runs ls`."""

import json
import re

import pytest

from mihd.cli import main
from mihd.errors import MihdError
from mihd.runs import backends
from mihd.runs.backends import Option, RunState, defaults, names, register, validate_options
from mihd.runs.backends.local import Backend as LocalBackend

from conftest import assert_one_line_error, run_mihd
from runs_helpers import FAKE, fake_plan, view, wait_for


def _queue(name: str) -> str:
    if not re.match(r"^[a-z]+$", name):
        raise ValueError("expected a queue name (lower-case letters)")
    return name


class QueueBackend(LocalBackend):
    """A third backend, as a PBS or LSF module would be: runs locally, speaks of its own queue."""
    name = "fakeq"
    options = (Option("queue", help="the queue to submit to", validate=_queue, metavar="Q"),
               Option("time", help="walltime", metavar="LIMIT"),  # a flag Slurm declares too
               Option("nodes", type=int, help="how many nodes", metavar="N"))

    def submit(self, run_dir, argv, options):
        return {**super().submit(run_dir, argv, options), "backend": self.name, "queue": options.get("queue")}

    def poll(self, handles):
        states = super().poll(handles)
        return {rid: RunState(st.state, reason=f"fakeq: {st.state} in queue {handles[rid].get('queue')}",
                              started=st.started) for rid, st in states.items()}


@pytest.fixture
def fakeq(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(backends, "BACKENDS", dict(backends.BACKENDS))
    monkeypatch.setattr(backends, "_classes", dict(backends._classes))
    monkeypatch.setattr(backends, "_instances", dict(backends._instances))
    monkeypatch.setenv("MIHD_INDEX_DIR", str(tmp_path_factory.mktemp("host-index")))
    register("fakeq", QueueBackend)
    return "fakeq"


def test_the_table_lists_backends_and_a_module_of_the_package_is_not_one():
    assert names()[:2] == ["local", "slurm"]
    for bad in ("slurm_commands", "base", "nope"):
        proc = run_mihd("launch", "--backend", bad, "--", "run", "demo", "--gene", "pca", "--fusion", "gene_only")
        assert_one_line_error(proc, f"--backend '{bad}': unknown backend (known: local, slurm)")


def test_a_third_backend_shows_in_launch_help_with_its_options(fakeq, capsys):
    with pytest.raises(SystemExit):
        main(["launch", "--help"])
    out = capsys.readouterr().out
    assert "--backend fakeq (defaults from <root>/fakeq.json)" in out
    assert re.search(r"--queue Q\s+\[fakeq\] the queue to submit to", out)
    assert re.search(r"--time LIMIT\s+\[slurm, fakeq\]", out)  # one flag, both backends


def test_a_third_backends_run_shows_in_runs_ls_with_its_own_words(fakeq, tmp_path, capsys):
    from mihd.runs.launch import launch

    run_id = launch(tmp_path, fake_plan(backend="fakeq", backend_options={"queue": "short"}),
                    raw_argv=["python3", FAKE, "{run_dir}", "--seconds", "60"], cached=[True])
    v = wait_for(lambda: (v := view(tmp_path, run_id)).status == "running" and v)
    assert v.backend == "fakeq" and v.reason == "fakeq: running in queue short"
    assert main(["runs", "ls", "--json", "--root", str(tmp_path)]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert (row["id"], row["backend"], row["status"]) == (run_id, "fakeq", "running")
    assert main(["runs", "kill", run_id, "--grace", "1s", "--root", str(tmp_path)]) == 0
    assert "status killed" in capsys.readouterr().out


def test_options_are_validated_alike_from_flags_files_and_fields(fakeq, tmp_path, capsys):
    assert validate_options("fakeq", {"queue": "short", "nodes": "2"}) == {"queue": "short", "nodes": 2}
    for bad, needle in [({"queue": "Short!"}, "--queue 'Short!': expected a queue name"),
                        ({"nodes": "two"}, "--nodes 'two': expected a whole number"),
                        ({"partition": "gpu"}, "'partition': not an option of --backend fakeq")]:
        with pytest.raises(MihdError, match=re.escape(needle)):
            validate_options("fakeq", bad)
    (tmp_path / "fakeq.json").write_text(json.dumps({"queue": "long", "nodes": 4}))
    assert defaults(tmp_path, "fakeq") == {"queue": "long", "nodes": 4}
    (tmp_path / "fakeq.json").write_text(json.dumps({"queue": "Long"}))
    with pytest.raises(MihdError, match=re.escape("fakeq.json: queue 'Long': expected a queue name")):
        defaults(tmp_path, "fakeq")
    argv = ["launch", "--root", str(tmp_path), "--backend", "local", "--queue", "short", "--", "run", "demo",
            "--gene", "pca", "--fusion", "gene_only"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mihd: error: --queue: an option of --backend fakeq, not of --backend local"
    assert not (tmp_path / "runs").exists()


async def test_a_third_backend_is_offered_by_the_launch_dialog(fakeq):
    from textual.app import App
    from textual.widgets import Select

    from mihd.grid import GridSpec
    from mihd_tui.screens.launch import LaunchDialog

    class Host(App):
        def pause_refresh(self, paused: bool) -> None:
            pass

        def on_mount(self) -> None:
            self.push_screen(LaunchDialog(GridSpec("demo"), [(["concat"], ["texture"])], "a cell", [], {}))

    async with Host().run_test() as pilot:
        await pilot.pause()
        backend = pilot.app.screen.query_one("#backend", Select)
        backend.value = "fakeq"  # an option the dialog offers (Select refuses any other value)
        await pilot.pause()
        assert backend.value == "fakeq"
