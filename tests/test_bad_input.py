"""Bad input never gets a traceback: every `mihd` command, given a wrong path, name, number, duration, backend
or a file of the wrong kind, exits 2 with one line on stderr, prints nothing on stdout and leaves the workspace
as it found it (no run dir, no cache entry, no registered slice).

Each case is a real `mihd` subprocess. Most fail before any heavy import and run against a fresh empty
workspace; the cases that need a slice, a cache entry or a finished run share one used workspace, made once.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from conftest import run_mihd

RUN = ("run", "demo", "--gene", "pca", "--fusion", "gene_only")
LAUNCH = ("launch", "--", *RUN)


def case(id_: str, needle: str, *args: str):
    """A bad command line and what its one error line must name."""
    return pytest.param(args, needle, id=id_)


# Placeholders: {files} holds files of the wrong kind (see `files`), {tmp} is an empty folder outside the workspace.
EMPTY_WORKSPACE_CASES = [
    # the parser itself: one line, never the usage block
    case("no-command", "COMMAND"),
    case("unknown-command", "nosuch", "nosuch"),
    case("unknown-option", "--colour", "runs", "ls", "--colour"),
    case("slices-no-action", "ACTION", "slices"),
    case("cache-no-action", "ACTION", "cache"),
    case("refine-no-method", "METHOD", "refine"),
    case("runs-no-action", "ACTION", "runs"),
    # slices add / ls: names and paths
    case("slices-add-missing-path", "PATH", "slices", "add", "x"),
    case("slices-add-name-slash", "NAME", "slices", "add", "a/b", "{files}/empty"),
    case("slices-add-name-empty", "NAME", "slices", "add", "", "{files}/empty"),
    case("slices-add-name-dotdot", "NAME", "slices", "add", "..", "{files}/empty"),
    case("slices-add-name-too-long", "NAME", "slices", "add", "n" * 65, "{files}/empty"),
    case("slices-add-demo-redefined", "demo", "slices", "add", "demo", "{files}/not_hdf5.h5ad"),
    case("slices-add-missing", "nosuch", "slices", "add", "x", "{files}/nosuch"),
    case("slices-add-empty-folder", "empty", "slices", "add", "x", "{files}/empty"),
    case("slices-add-no-spatial", "spatial", "slices", "add", "x", "{files}/no_spatial"),
    case("slices-add-text-as-h5ad", "not_hdf5.h5ad", "slices", "add", "x", "{files}/not_hdf5.h5ad"),
    case("slices-add-png-as-h5ad", "png.h5ad", "slices", "add", "x", "{files}/png.h5ad"),
    case("slices-add-png", "image.png", "slices", "add", "x", "{files}/image.png"),
    case("slices-add-symlink-loop", "loop", "slices", "add", "x", "{files}/loop"),
    case("slices-add-newline-path", "line", "slices", "add", "x", "{files}/new\nline.h5ad"),
    case("slices-add-root-is-file", "--root", "slices", "add", "x", "{files}/empty", "--root", "{files}/text.txt"),
    case("slices-ls-root-is-file", "--root", "slices", "ls", "--root", "{files}/text.txt"),
    case("slices-ls-extra-arg", "extra", "slices", "ls", "extra"),
    # extract: encoders, names, weights, slices
    case("extract-no-modality", "--gene", "extract", "demo"),
    case("extract-both-modalities", "--vision", "extract", "demo", "--gene", "pca", "--vision", "texture"),
    case("extract-unknown-gene", "nosuch", "extract", "demo", "--gene", "nosuch"),
    case("extract-unknown-vision", "nosuch", "extract", "demo", "--vision", "nosuch"),
    case("extract-cache-name-empty", "--cache-name", "extract", "demo", "--gene", "pca", "--cache-name", ""),
    case("extract-device-unknown", "--device", "extract", "demo", "--vision", "texture", "--device", "gpu"),
    case("extract-cache-name-path", "--cache-name", "extract", "demo", "--gene", "pca", "--cache-name", "../x"),
    case("extract-unknown-variant", "nosuch", "extract", "demo", "--vision", "texture", "--variant", "nosuch"),
    case("extract-unknown-precision", "--precision", "extract", "demo", "--vision", "resnet50", "--precision", "fp8"),
    case("extract-weights-text", "text.txt", "extract", "demo", "--vision", "resnet50", "--weights", "{files}/text.txt"),
    case("extract-weights-empty-folder", "empty", "extract", "demo", "--vision", "resnet50", "--weights", "{files}/empty"),
    case("extract-unknown-slice", "nosuch", "extract", "nosuch", "--gene", "pca"),
    case("extract-slice-not-hdf5", "not_hdf5.h5ad", "extract", "{files}/not_hdf5.h5ad", "--gene", "pca"),
    case("extract-slice-empty-folder", "empty", "extract", "{files}/empty", "--gene", "pca"),
    case("extract-slice-symlink-loop", "loop", "extract", "{files}/loop", "--gene", "pca"),
    case("extract-cache-from-symlink-loop", "--cache-from", "extract", "demo", "--gene", "pca", "--cache-from",
         "{files}/loop"),
    case("extract-cache-from-missing", "--cache-from", "extract", "demo", "--gene", "pca", "--cache-from", "{files}/empty"),
    # cache
    case("cache-ls-root-is-file", "--root", "cache", "ls", "--root", "{files}/text.txt"),
    case("cache-rm-nothing", "nosuch", "cache", "rm", "nosuch"),
    case("cache-rm-bad-modality", "--modality", "cache", "rm", "demo", "--modality", "text"),
    case("cache-gc-bad-age", "--older-than", "cache", "gc", "--older-than", "abc"),
    case("cache-gc-negative-age", "--older-than", "cache", "gc", "--older-than=-5m"),
    case("cache-verify-root-is-file", "--root", "cache", "verify", "--root", "{files}/text.txt"),
    # run: numbers, names, slices of the wrong kind
    case("run-n-clusters-text", "--n-clusters", *RUN, "--n-clusters", "abc"),
    case("run-n-clusters-zero", "--n-clusters", *RUN, "--n-clusters", "0"),
    case("run-n-clusters-negative", "--n-clusters", *RUN, "--n-clusters=-3"),
    case("run-unknown-fusion", "nosuch", "run", "demo", "--gene", "pca", "--fusion", "nosuch"),
    case("run-unknown-gene", "nosuch", "run", "demo", "--gene", "nosuch", "--fusion", "gene_only"),
    case("run-unknown-vision", "nosuch", "run", "demo", "--gene", "pca", "--vision", "nosuch", "--fusion", "concat"),
    case("run-unknown-cluster", "nosuch", *RUN, "--cluster", "nosuch"),
    case("run-unknown-variant", "nosuch", "run", "demo", "--gene", "pca", "--vision", "texture", "--fusion", "concat",
         "--variant", "nosuch"),
    case("run-fusion-needs-vision", "--vision", "run", "demo", "--gene", "pca", "--fusion", "concat"),
    case("run-seeds-text", "--seeds", *RUN, "--seeds", "abc"),
    case("run-seeds-zero", "--seeds", *RUN, "--seeds", "0"),
    case("run-seeds-twice", "--seeds", *RUN, "--seeds", "1,1"),
    case("run-seed-text", "--seed", *RUN, "--seed", "x"),
    case("run-seed-and-seeds", "--seeds", *RUN, "--seed", "1", "--seeds", "3"),
    case("run-unknown-device", "--device", *RUN, "--device", "tpu"),
    case("run-unknown-precision", "--precision", "run", "demo", "--gene", "pca", "--vision", "resnet50",
         "--fusion", "concat", "--precision", "fp8"),
    case("run-weights-text", "text.txt", "run", "demo", "--gene", "pca", "--vision", "resnet50", "--fusion", "concat",
         "--weights", "{files}/text.txt"),
    case("run-unknown-slice", "nosuch", "run", "nosuch", "--gene", "pca", "--fusion", "gene_only"),
    case("run-slice-empty-folder", "empty", "run", "{files}/empty", "--gene", "pca", "--fusion", "gene_only"),
    case("run-slice-no-spatial", "spatial", "run", "{files}/no_spatial", "--gene", "pca", "--fusion", "gene_only"),
    case("run-slice-png-as-h5ad", "png.h5ad", "run", "{files}/png.h5ad", "--gene", "pca", "--fusion", "gene_only"),
    case("run-slice-symlink-loop", "loop", "run", "{files}/loop", "--gene", "pca", "--fusion", "gene_only"),
    case("run-slice-newline-path", "line", "run", "{files}/new\nline.h5ad", "--gene", "pca", "--fusion", "gene_only"),
    case("run-fullres-missing", "--fullres", *RUN, "--fullres", "{files}/nosuch.png"),
    case("run-fullres-text", "--fullres", *RUN, "--fullres", "{files}/text.txt"),
    case("run-run-dir-symlink-loop", "--run-dir", *RUN, "--run-dir", "{files}/loop"),
    case("run-run-dir-is-file", "--run-dir", *RUN, "--run-dir", "{files}/text.txt"),
    # grid: empty lists
    case("grid-fusion-comma", "--fusion", "grid", "demo", "--gene", "pca", "--fusion", ","),
    case("grid-gene-comma", "--gene", "grid", "demo", "--gene", ",", "--fusion", "gene_only"),
    case("grid-cluster-comma", "--cluster", "grid", "demo", "--gene", "pca", "--fusion", "gene_only", "--cluster", ","),
    case("grid-one-unknown-fusion", "nosuch", "grid", "demo", "--gene", "pca", "--fusion", "gene_only,nosuch"),
    case("grid-one-unknown-vision", "nosuch", "grid", "demo", "--gene", "pca", "--vision", "texture,nosuch",
         "--fusion", "concat"),
    # exec-plan
    case("exec-plan-missing-dir", "nosuch", "exec-plan", "--run-dir", "{files}/nosuch"),
    case("exec-plan-symlink-loop", "--run-dir", "exec-plan", "--run-dir", "{files}/loop"),
    case("exec-plan-no-spec", "spec.json", "exec-plan", "--run-dir", "{files}/empty"),
    # refine scan
    case("refine-unknown-vision", "nosuch", "refine", "scan", "demo", "--vision", "nosuch"),
    case("refine-unknown-variant", "nosuch", "refine", "scan", "demo", "--vision", "texture", "--variant", "nosuch"),
    case("refine-cache-name-path", "--cache-name", "refine", "scan", "demo", "--vision", "texture", "--cache-name", "a/b"),
    case("refine-n-clusters-text", "--n-clusters", "refine", "scan", "demo", "--vision", "texture", "--n-clusters", "x"),
    case("refine-n-clusters-one", "--n-clusters", "refine", "scan", "demo", "--vision", "texture", "--n-clusters", "1"),
    case("refine-unknown-slice", "nosuch", "refine", "scan", "nosuch", "--vision", "texture"),
    # launch: backends, durations, names, and the run arguments after --
    case("launch-no-command", "command", "launch"),
    case("launch-not-run", "run", "launch", "--", "slices", "ls"),
    case("launch-unknown-backend", "nosuch", "launch", "--backend", "nosuch", "--", *RUN),
    case("launch-expect-text", "--expect", "launch", "--expect", "abc", "--", *RUN),
    case("launch-expect-zero", "--expect", "launch", "--expect", "0s", "--", *RUN),
    case("launch-name-newline", "--name", "launch", "--name", "a\nb", "--", *RUN),
    case("launch-name-blank", "--name", "launch", "--name", " ", "--", *RUN),
    case("launch-slurm-option-on-local", "--partition", "launch", "--partition", "gpu", "--", *RUN),
    case("launch-slurm-bad-time", "--time", "launch", "--backend", "slurm", "--time", "xx", "--", *RUN),
    case("launch-slurm-bad-cpus", "--cpus", "launch", "--backend", "slurm", "--cpus", "abc", "--", *RUN),
    case("launch-parallel-text", "--parallel", "launch", "--parallel", "many", "--", "grid", "demo", "--gene", "pca",
         "--fusion", "gene_only"),
    case("launch-parallel-zero", "--parallel", "launch", "--parallel", "0", "--", "grid", "demo", "--gene", "pca",
         "--fusion", "gene_only"),
    case("launch-slurm-max-parallel-text", "--max-parallel", "launch", "--backend", "slurm", "--max-parallel", "x",
         "--", "grid", "demo", "--gene", "pca", "--fusion", "gene_only"),
    case("launch-run-n-clusters-text", "--n-clusters", *LAUNCH, "--n-clusters", "abc"),
    case("launch-run-run-dir", "--run-dir", *LAUNCH, "--run-dir", "{tmp}/x"),
    case("launch-run-unknown-slice", "nosuch", "launch", "--", "run", "nosuch", "--gene", "pca", "--fusion", "gene_only"),
    case("launch-run-empty-folder", "empty", "launch", "--", "run", "{files}/empty", "--gene", "pca", "--fusion", "gene_only"),
    case("launch-grid-fusion-comma", "--fusion", "launch", "--", "grid", "demo", "--gene", "pca", "--fusion", ","),
    # runs
    case("runs-show-unknown", "nosuch", "runs", "show", "nosuch"),
    case("runs-show-empty-id", "run ''", "runs", "show", ""),
    case("runs-wait-unknown", "nosuch", "runs", "wait", "nosuch"),
    case("runs-wait-timeout-text", "--timeout", "runs", "wait", "x", "--timeout", "abc"),
    case("notify-test-root-is-file", "--root", "notify", "test", "--root", "{files}/text.txt"),
    case("runs-logs-unknown", "nosuch", "runs", "logs", "nosuch"),
    case("runs-kill-unknown", "nosuch", "runs", "kill", "nosuch"),
    case("runs-kill-bad-grace", "--grace", "runs", "kill", "nosuch", "--grace", "abc"),
    case("runs-kill-bad-signal", "--signal", "runs", "kill", "nosuch", "--signal", "HUP"),
    case("runs-ls-factor-text", "--overrun-factor", "runs", "ls", "--overrun-factor", "abc"),
    case("runs-ls-factor-negative", "--overrun-factor", "runs", "ls", "--overrun-factor=-1"),
    case("runs-rm-no-id", "ID", "runs", "rm"),
    case("runs-rm-unknown", "nosuch", "runs", "rm", "nosuch"),
    case("runs-ls-root-symlink-loop", "--root", "runs", "ls", "--root", "{files}/loop"),
    case("runs-reindex-root-is-file", "--root", "runs", "reindex", "--root", "{files}/text.txt"),
    # results, export, doctor
    case("results-unknown-format", "--format", "results", "--format", "xml"),
    case("results-unknown-run", "nosuch", "results", "--run", "nosuch"),
    case("export-unknown-run", "nosuch", "export", "nosuch", "--png", "{tmp}/out.png"),
    case("doctor-missing-root", "--root", "doctor", "--root", "{files}/nosuch"),
    case("doctor-root-is-file", "--root", "doctor", "--root", "{files}/text.txt"),
]

# Cases that need the used workspace ({run}: its finished run; demo registered, its pca entry cached).
USED_WORKSPACE_CASES = [
    case("cache-rm-unknown-name", "nosuch", "cache", "rm", "demo", "--name", "nosuch"),
    case("runs-kill-done-bad-grace", "--grace", "runs", "kill", "{run}", "--grace=-1s"),
    case("extract-weights-missing", "nosuch.pt", "extract", "demo", "--vision", "resnet50", "--weights", "{files}/nosuch.pt"),
    case("extract-unknown-truth-col", "--truth-col", "extract", "demo", "--gene", "pca", "--truth-col", "nosuch"),
    case("run-unknown-truth-col", "--truth-col", *RUN, "--truth-col", "nosuch"),
    case("export-nothing-asked", "--h5ad", "export", "{run}"),
    case("export-unknown-cell", "--cell", "export", "{run}", "--cell", "99", "--png", "{tmp}/out.png"),
    case("export-png-folder-missing", "--png", "export", "{run}", "--png", "{tmp}/nosuch/out.png"),
    case("export-unknown-cell-label", "--cell", "export", "{run}", "--cell", "pca nosuch", "--png", "{tmp}/out.png"),
    case("export-slice-empty-folder", "empty", "export", "{run}", "--h5ad", "{tmp}/out.h5ad", "--slice", "{files}/empty"),
    case("export-png-symlink-loop", "--png", "export", "{run}", "--png", "{files}/loop"),
    case("export-h5ad-is-folder", "--h5ad", "export", "{run}", "--h5ad", "{tmp}"),
    case("export-slice-not-hdf5", "not_hdf5.h5ad", "export", "{run}", "--h5ad", "{tmp}/out.h5ad",
         "--slice", "{files}/not_hdf5.h5ad"),
    case("slices-add-fullres-text", "--fullres", "slices", "add", "x", "{demo}", "--fullres", "{files}/text.txt"),
    case("slices-add-fullres-missing", "--fullres", "slices", "add", "x", "{demo}", "--fullres", "{files}/nosuch.png"),
    case("slices-add-demo-again", "demo", "slices", "add", "demo", "{demo}"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Files and folders of the wrong kind, outside any workspace."""
    folder = tmp_path_factory.mktemp("wrong-kind")
    (folder / "text.txt").write_text("not weights, not an image\n")
    Image.new("RGB", (8, 8), (200, 150, 200)).save(folder / "image.png")
    (folder / "png.h5ad").write_bytes((folder / "image.png").read_bytes())
    (folder / "not_hdf5.h5ad").write_text("barcode,label\nAAAC-1,L1\n")
    (folder / "new\nline.h5ad").write_text("a file whose name holds a newline\n")
    (folder / "empty").mkdir()
    counts = folder / "no_spatial" / "filtered_feature_bc_matrix"
    counts.mkdir(parents=True)
    for name in ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"):
        (counts / name).write_bytes(b"")
    (folder / "loop").symlink_to(folder / "loop")
    return folder


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("host-index")


@pytest.fixture(scope="module")
def used_workspace(tmp_path_factory, index_dir) -> tuple[Path, str]:
    """A workspace with the demo slice, its pca embedding and one finished run (a real `mihd run`)."""
    root = tmp_path_factory.mktemp("used-ws")
    proc = mihd("run", "demo", "--gene", "pca", "--fusion", "gene_only", "--cluster", "kmeans", root=root,
                index_dir=index_dir)
    assert proc.returncode == 0, proc.stderr
    (run,) = [p.name for p in (root / "runs").iterdir()]
    return root, run


def mihd(*args: str, root: Path, index_dir: Path) -> subprocess.CompletedProcess:
    """`mihd ARGS` in a subprocess on workspace `root`, with this suite's host index (not the temp folder's)."""
    return run_mihd(*args, root=root, env={"MIHD_INDEX_DIR": str(index_dir)}, timeout=300)


def listing(root: Path) -> dict[str, tuple | None]:
    """Every path under the workspace; a file with its size and modification time (rewritten counts as changed)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = None if path.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def assert_refused(args: tuple[str, ...], needle: str, root: Path, index_dir: Path, outside: tuple[Path, ...] = (),
                   **places) -> None:
    """`mihd ARGS` exits 2 with one line naming `needle`, prints nothing on stdout, and changes nothing in the
    workspace `root` nor in the `outside` folders."""
    argv = [str(a).format(**places) for a in args]
    watched = (root, *outside)
    before = [listing(folder) for folder in watched]
    proc = mihd(*argv, root=root, index_dir=index_dir)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert needle.lower() in lines[0].lower(), (needle, lines[0])
    assert proc.stdout == "", proc.stdout
    assert [listing(folder) for folder in watched] == before, "something was made or changed"


@pytest.mark.parametrize("args, needle", EMPTY_WORKSPACE_CASES)
def test_refused_in_a_new_workspace(args, needle, files, index_dir, tmp_path):
    root, scratch = tmp_path / "ws", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    assert_refused(args, needle, root, index_dir, (files, scratch), files=files, tmp=scratch)


@pytest.mark.parametrize("args, needle", USED_WORKSPACE_CASES)
def test_refused_in_a_used_workspace(args, needle, files, index_dir, used_workspace, tmp_path):
    root, run = used_workspace
    assert_refused(args, needle, root, index_dir, (files, tmp_path), files=files, tmp=tmp_path, run=run,
                   demo=root / "demo" / "demo.h5ad")


def test_the_suite_covers_every_command():
    """Every command `mihd --help` lists, and every action of a command group (`runs rm`), has a bad-input case."""
    import argparse

    from mihd.cli import build_parser

    def commands(parser, prefix=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from commands(child, (*prefix, name)) if child._subparsers else [(*prefix, name)]

    tried = {tuple(p.values[0]) for p in EMPTY_WORKSPACE_CASES + USED_WORKSPACE_CASES}
    untried = [" ".join(c) for c in commands(build_parser()) if not any(t[:len(c)] == c for t in tried)]
    assert not untried, untried
    assert len(EMPTY_WORKSPACE_CASES) + len(USED_WORKSPACE_CASES) >= 60


@pytest.mark.parametrize("args", [("slices", "add", "other", "{demo}"), ("slices", "ls"),
                                  ("run", "demo", "--gene", "pca", "--fusion", "gene_only")])
def test_a_registry_file_that_is_not_json_is_said_and_never_written_over(args, index_dir, used_workspace, tmp_path):
    """A hand-broken slices.json is named, not read as no slices, and never rewritten (that would lose every slice
    in it): registering, listing and making the demo all refuse."""
    root = tmp_path / "ws"
    root.mkdir()
    (root / "slices.json").write_text('{"mine": {"path": "/data/mine"},')
    assert_refused(args, "slices.json", root, index_dir, demo=used_workspace[0] / "demo" / "demo.h5ad")
