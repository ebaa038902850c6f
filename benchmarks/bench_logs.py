"""`mihd runs logs` of a long run.log: peak RSS and seconds, to a pipe and to a terminal (a pseudo-terminal,
where every line goes through mihd.safe_text). Reading the log whole cost 640 MB of RSS on a 200 MB log.

Run: .venv/bin/python benchmarks/bench_logs.py [--mb 200]
"""

from __future__ import annotations

import argparse
import os
import pty
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mihd.jsonio import write_json_atomic
from mihd.plan import Cell, RunSpec

REPO = Path(__file__).resolve().parent.parent
RUN_ID = "20250101-093012-345-a1b2c3"


def make_run(root: Path, mb: int) -> Path:
    run_dir = root / "runs" / RUN_ID
    run_dir.mkdir(parents=True)
    plan = RunSpec((Cell("demo", "pca", "texture", "concat", "gmm", "standard"),))
    write_json_atomic(run_dir / "spec.json", {"plan": plan.to_dict(), "id": RUN_ID, "argv": ["mihd"],
                                              "cached": [True], "created": time.time(), "by": "bench"})
    write_json_atomic(run_dir / "exit.json", {"code": 0, "signal": None, "ended": time.time(), "forwarded": []})
    line = b"[12:03:04] train 150/300 loss 0.41 \x1b[32mok\x1b[0m " + b"x" * 60 + b"\n"
    block = line * ((1 << 20) // len(line) + 1)
    with open(run_dir / "run.log", "wb") as fh:
        for _ in range(mb):
            fh.write(block[: 1 << 20])
    return run_dir


def measure(root: Path, tty: bool) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `mihd runs logs`, its output drained (to a pty or a pipe)."""
    argv = [sys.executable, "-m", "mihd", "runs", "logs", RUN_ID, "--root", str(root)]
    t0 = time.perf_counter()
    if tty:
        master, slave = pty.openpty()
        proc = subprocess.Popen(argv, stdout=slave, stderr=slave, cwd=REPO)
        os.close(slave)
        drain = threading.Thread(target=lambda: _drain(master), daemon=True)
        drain.start()
    else:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if tty:
        drain.join(10)
    assert proc.returncode == 0, proc.returncode
    return seconds, usage.ru_maxrss / 1024


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 1 << 16):
            pass
    except OSError:
        pass
    os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_run(root, args.mb)
        subprocess.run([sys.executable, "-m", "mihd", "runs", "ls", "--root", str(root)], capture_output=True)
        for name, tty in (("pipe", False), ("terminal", True)):
            seconds, rss = measure(root, tty)
            print(f"runs logs, {args.mb} MB run.log to a {name:<8}: {seconds:6.1f} s, peak RSS {rss:6.0f} MB")


if __name__ == "__main__":
    main()
