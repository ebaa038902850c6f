"""The live log: a run's own events also go to stderr (run.log under a supervisor) as lines worth reading."""

import re

from mihd.rundir import EventLog, read_events


def _lines(text: str) -> list[str]:
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in text.splitlines()), text
    return [line[11:] for line in text.splitlines()]


def test_cells_stages_losses_and_scores_are_written_as_lines(tmp_path, capfd):
    log = EventLog(tmp_path / "run")
    log.emit("start", cells=2, slice="151673")
    log.emit("cell", index=0, of=2,
             cell={"gene": "pca", "vision": "texture", "fusion": "staig_fusion", "cluster": "gmm"})
    log.stage("fuse", 0, 1)
    for epoch in range(10, 301, 10):
        log.stage("train", epoch, 300, min_interval=0.0, loss=1.0 / epoch)
    log.emit("cache", modality="vision", name="texture", status="hit", seconds=0.01)
    log.emit("metric", index=0, ari=0.51234, nmi=0.6)
    log.emit("cell", index=1, of=2, cell={"gene": "pca", "vision": None, "fusion": "gene_only", "cluster": "gmm"})
    log.emit("metric", index=1, ari=None, nmi=None, error="--fusion gene_only: boom")
    log.emit("end", status="failed", error="some cells failed")
    log.close()
    lines = _lines(capfd.readouterr().err)
    assert lines[:3] == ["start: 151673 2 cells", "cell 1/2 pca+texture staig_fusion gmm", "fuse"]
    train = [line for line in lines if line.startswith("train")]
    assert train[0] == "train 10/300 loss 0.1" and train[-1] == "train 300/300 loss 0.003333"
    assert len(train) == 2  # a calm rate: the first step and the last, not thirty lines
    assert "vision texture: hit (0.0 s)" in lines
    assert re.fullmatch(r"cell 1/2 ARI 0\.512 \(\d+\.\d s\)", next(x for x in lines if "ARI" in x))
    assert lines[-3] == "cell 2/2 pca gene_only gmm" and lines[-2].startswith("cell 2/2 failed (")
    assert lines[-1] == "end: failed: some cells failed"
    events, _ = read_events(tmp_path / "run")
    assert [e["loss"] for e in events if e["kind"] == "stage" and e["stage"] == "train"][0] == 0.1


def test_watchers_and_plain_api_use_write_no_lines(tmp_path, capfd):
    EventLog(None).emit("cell", index=0, of=1, cell={})  # no run dir: no events, no lines
    log = EventLog(tmp_path / "run")
    log.emit("overrun", elapsed=10.0, expected=5.0, source="given", factor=1.0)  # a watcher's event
    log.close()
    assert capfd.readouterr().err == ""
