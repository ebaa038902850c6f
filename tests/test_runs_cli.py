"""`mihd launch` / `mihd runs ...` from the command line, over real runs."""

import json
import subprocess
import sys
from pathlib import Path

from mihd.cli import main
from mihd.plan import Cell, RunSpec

from runs_helpers import drop_index, launch_fake, view, wait_for

REPO = Path(__file__).resolve().parents[1]


def mihd(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "mihd", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_ls_show_logs_kill_reindex(tmp_path):
    done = launch_fake(tmp_path, "--seconds", 0.2, "--ari", 0.42, name="quick")
    live = launch_fake(tmp_path, "--seconds", 60, "--children", 1)
    wait_for(lambda: view(tmp_path, done).status == "done" and (view(tmp_path, live).progress or 0) >= 0)
    ls = mihd("runs", "ls", "--root", tmp_path)
    assert ls.returncode == 0, ls.stderr
    lines = ls.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "CELL", "STATUS"]
    assert any(done in l and "done" in l and "0.420" in l for l in lines)
    assert any(live in l and "running" in l for l in lines)
    rows = json.loads(mihd("runs", "ls", "--json", "--all", "--root", tmp_path).stdout)
    assert {r["id"] for r in rows} == {done, live} and all("eta_s" in r and "cpu_percent" in r for r in rows)

    show = mihd("runs", "show", "quick", "--root", tmp_path)  # by name; ids and id prefixes work too
    assert show.returncode == 0 and "ARI 0.420" in show.stdout and done in show.stdout
    assert "cell 0 step 10/10" in mihd("runs", "logs", done[:-4], "--root", tmp_path).stdout

    follow = subprocess.Popen([sys.executable, "-m", "mihd", "runs", "logs", "-f", live, "--root", tmp_path],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    kill = mihd("runs", "kill", live, "--grace", "1s", "--root", tmp_path)
    assert kill.returncode == 0 and "status killed" in kill.stdout and "0 processes left" in kill.stdout
    assert "ended with signal TERM" in follow.communicate(timeout=20)[0]  # -f stops when the run ends
    again = mihd("runs", "kill", live, "--root", tmp_path)
    assert again.returncode == 2 and "not running (killed)" in again.stderr

    drop_index(tmp_path)
    reindex = mihd("runs", "reindex", "--root", tmp_path)
    assert reindex.returncode == 0 and "indexed 2 run dirs" in reindex.stdout
    assert view(tmp_path, live).status == "killed" and view(tmp_path, done).ari == 0.42


def test_launch_arguments_and_errors(tmp_path, capsys):
    assert main(["launch", "--root", str(tmp_path), "--", "cache", "ls"]) == 2
    assert "expected `run ...` or `grid ...`" in capsys.readouterr().err
    assert main(["launch", "--root", str(tmp_path), "--expect", "soon", "--", "run", "demo"]) == 2
    assert "--expect 'soon'" in capsys.readouterr().err
    assert main(["launch", "--root", str(tmp_path), "--", "run", "demo", "--gene", "pca", "--fusion", "gene_only",
                 "--run-dir", "x"]) == 2
    assert main(["runs", "show", "nope", "--root", str(tmp_path)]) == 2
    assert "no such run" in capsys.readouterr().err


def test_launch_writes_spec_and_runs_mihd(tmp_path, capsys):
    """The launched command is `python -m mihd exec-plan --run-dir D --root R` under the supervisor: it runs
    the RunSpec that spec.json holds, built from the arguments after `--` by the parser of `mihd run`."""
    assert main(["launch", "--root", str(tmp_path), "--expect", "2m", "--name", "n1", "--",
                 "run", "demo", "--gene", "pca", "--fusion", "gene_only"]) == 0
    run_id = capsys.readouterr().out.strip()
    spec = json.loads((tmp_path / "runs" / run_id / "spec.json").read_text())
    assert spec["argv"][1:] == ["-m", "mihd", "exec-plan", "--run-dir", str(tmp_path / "runs" / run_id),
                                "--root", str(tmp_path)]
    plan = RunSpec.from_dict(spec["plan"])
    assert (plan.expect, plan.backend, plan.name, plan.kind) == (120, "local", "n1", "run")
    assert plan.cells == (Cell("demo", "pca", None, "gene_only"),) and spec["cached"] == [False]
    v = wait_for(lambda: (v := view(tmp_path, run_id)).status in ("done", "failed", "killed") and v, timeout=300)
    assert v.name == "n1" and v.status == "done" and v.exit_code == 0 and 0 < v.ari <= 1
