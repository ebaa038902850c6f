"""usage.json: a run's CPU, memory and GPU use measured from inside it by its supervisor."""

import subprocess
import sys
import time

import psutil

from mihd.runs.gpu import Gpu
from mihd.runs.usage import GroupUsage, read_usage

from runs_helpers import fake_nvml, launch_fake, view, wait_for
from test_runs_cli import mihd

BUSY = "x = bytearray(b'x' * (80 << 20)); import time; t = time.time()\nwhile time.time() - t < 30: pass"
MB = 1 << 20


def test_group_usage_measures_a_busy_process_group_and_keeps_its_peaks():
    child = subprocess.Popen([sys.executable, "-c", BUSY], process_group=0)
    try:
        usage = GroupUsage(child.pid, gpu=Gpu(nvml=fake_nvml(pids_mem={child.pid: 2 << 30, 999_999: 5})))
        wait_for(lambda: usage.sample()["rss"] >= 80 * MB)  # the allocation is done
        proc = psutil.Process(child.pid)
        before, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        time.sleep(1.0)
        busy = usage.sample()
        used = 100 * (sum(proc.cpu_times()[:2]) - before) / (time.monotonic() - t0)  # what it did get (a loaded
        assert busy["cpu_percent"] > 20 and abs(busy["cpu_percent"] - used) < 15, (busy, used)  # machine: < 100)
        assert busy["nprocs"] == 1
        assert busy["gpu_mem"] == 2 << 30  # only the group's own pids count
    finally:
        child.kill()
        child.wait()
    after = usage.sample()
    assert (after["nprocs"], after["rss"]) == (0, 0)
    assert after["peak"]["rss"] >= 80 * MB and after["peak"]["cpu_percent"] >= busy["cpu_percent"]
    assert after["peak"]["gpu_mem"] == 2 << 30


def test_without_a_gpu_usage_has_no_gpu_figure():
    usage = GroupUsage(1, gpu=Gpu(nvml=fake_nvml(fail_init=True)))
    assert usage.sample()["gpu_mem"] is None and usage.peak["gpu_mem"] is None


def test_a_finished_run_keeps_its_peak_memory_and_runs_show_prints_it(tmp_path):
    run_id = launch_fake(tmp_path, "--seconds", 0.3, "--mem", 60, name="mem")
    wait_for(lambda: view(tmp_path, run_id).status == "done")
    peak = read_usage(tmp_path / "runs" / run_id)["peak"]
    assert peak["rss"] >= 60 * MB  # shorter than one sampling interval, still exact (the kernel's high-water mark)
    show = mihd("runs", "show", "mem", "--root", tmp_path)
    line = next(line for line in show.stdout.splitlines() if line.strip().startswith("peak"))
    assert "M" in line.split("/")[1] and int(line.split("/")[1].strip().rstrip("M")) >= 60


WORKERS = """import os, time
x = bytearray(b'x' * (100 << 20))
for _ in range(3):
    if os.fork() == 0:  # a grid's worker: its own session, the parent's pages shared until written
        os.setsid()
        time.sleep(60)
        os._exit(0)
time.sleep(60)
"""


def test_usage_counts_workers_in_sessions_of_their_own_and_shared_pages_once():
    """A grid's runner forks its workers into sessions of their own: they count (the peak sizes `--mem`), and
    the pages they share with the runner count once (1.1 GB said of a grid that used 3.3 GB, or 4x claimed)."""
    child = subprocess.Popen([sys.executable, "-c", WORKERS], process_group=0)
    try:
        usage = GroupUsage(child.pid)
        sample = wait_for(lambda: (s := usage.sample())["nprocs"] == 4 and s["rss"] >= 100 * MB and s, timeout=30)
        assert sample["rss"] < 200 * MB, sample  # RSS summed would say 400 MB
    finally:
        for p in psutil.Process(child.pid).children(recursive=True):
            p.kill()
        child.kill()
        child.wait()


def test_a_run_shorter_than_one_sample_keeps_the_cpu_it_used_as_its_peak(tmp_path):
    from mihd.runs.launch import launch
    from mihd.workspace import run_path
    from runs_helpers import fake_plan

    burn = "import time; t = time.time()\nwhile time.time() - t < 2: pass"
    run_id = launch(tmp_path, fake_plan(), raw_argv=[sys.executable, "-c", burn])
    run_dir = run_path(tmp_path, run_id)
    wait_for(lambda: (run_dir / "exit.json").exists(), timeout=60)
    peak = read_usage(run_dir)["peak"]
    assert peak["cpu_percent"] > 20, peak  # about 100 % of a core for 2 s, less on a loaded machine
