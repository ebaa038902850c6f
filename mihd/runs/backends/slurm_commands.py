"""The one seam around Slurm's commands: sbatch, squeue, scontrol show job / config, scancel.

Everything Slurm prints is parsed here, from text, by pure functions; `SlurmCommands` only runs the
commands through a `runner(argv) -> (returncode, stdout, stderr)`, so tests hand it fixture texts for the
odd outputs a cluster can produce. The environment is cleaned first: a user's SQUEUE_FORMAT or
SQUEUE_STATES would otherwise change what squeue prints, and SLURM_TIME_FORMAT how times look.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

from ...errors import MihdError

SEP = "|"
SQUEUE_FORMAT = SEP.join(("%i", "%T", "%S", "%N", "%r"))  # job id, state, start, nodes, reason (last: may hold spaces)
TIMEOUT_S = 30.0

# Slurm job states (long names); squeue's short codes map onto them.
STATES = (
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "COMPLETING", "CONFIGURING", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PENDING", "PREEMPTED", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
    "RESV_DEL_HOLD", "REVOKED", "RUNNING", "SIGNALING", "SPECIAL_EXIT", "STAGE_OUT", "STOPPED", "SUSPENDED",
    "TIMEOUT",
)
SHORT = {"BF": "BOOT_FAIL", "CA": "CANCELLED", "CD": "COMPLETED", "CG": "COMPLETING", "CF": "CONFIGURING",
         "DL": "DEADLINE", "F": "FAILED", "NF": "NODE_FAIL", "OOM": "OUT_OF_MEMORY", "PD": "PENDING",
         "PR": "PREEMPTED", "RQ": "REQUEUED", "RF": "REQUEUE_FED", "RH": "REQUEUE_HOLD", "RS": "RESIZING",
         "RD": "RESV_DEL_HOLD", "RV": "REVOKED", "R": "RUNNING", "SI": "SIGNALING", "SE": "SPECIAL_EXIT",
         "SO": "STAGE_OUT", "ST": "STOPPED", "S": "SUSPENDED", "TO": "TIMEOUT"}
_JOB_ID = re.compile(r"^\d+([_+]\d+)?$")
_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/]*)=")
_NONE = ("", "N/A", "NONE", "UNKNOWN", "(NULL)")
_KILL_WAIT = re.compile(r"^KillWait\s*=\s*(\d+)", re.M)

Runner = Callable[[list[str]], tuple[int, str, str]]


@dataclass
class JobInfo:
    job_id: str
    state: str                  # a long Slurm state name (STATES), or the raw word when Slurm has a new one
    reason: str | None = None   # pending reason or why it ended; None for Slurm's "None"
    start: float | None = None  # when it started running (None while pending: squeue's %S is a forecast)
    end: float | None = None
    nodes: str | None = None
    exit_code: str | None = None  # scontrol's "code:signal"
    time_limit: float | None = None  # seconds (scontrol's TimeLimit: the job's own, else its partition's default)


def normalise_state(text: str) -> str:
    """`CANCELLED by 0` -> CANCELLED, `CANCELLED+` -> CANCELLED, `OUT_OF_ME+` -> OUT_OF_MEMORY, `PD` -> PENDING."""
    word = (text.split() or [""])[0].upper()
    truncated = word.endswith("+")
    word = word.rstrip("+")
    if word in SHORT:
        return SHORT[word]
    if word in STATES or not truncated:
        return word
    return next((s for s in STATES if s.startswith(word)), word)  # sacct-style truncated names


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch from Slurm's standard `2025-01-31T09:30:12` (local time); None for N/A."""
    if text is None or text.strip().upper() in _NONE:
        return None
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _reason(text: str | None) -> str | None:
    text = (text or "").strip()
    return None if text.upper() in _NONE else text


def parse_squeue(text: str) -> dict[str, JobInfo]:
    """Jobs by id from `squeue -h -o SQUEUE_FORMAT` output. A line in any other shape (a user's own format
    slipping through, a header) is an error, never a guess: a misread squeue would mark live runs lost."""
    jobs = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.strip().split(SEP, 4)
        if len(parts) != 5 or not _JOB_ID.match(parts[0]) or not re.match(r"^[A-Z_]+\+?$", parts[1]):
            raise MihdError(f"squeue: unexpected output line {line.strip()[:80]!r} (expected -o '{SQUEUE_FORMAT}')")
        job_id, state, start, nodes, reason = parts
        state = normalise_state(state)
        jobs[job_id] = JobInfo(job_id, state, _reason(reason),
                               start=None if state == "PENDING" else parse_time(start), nodes=_reason(nodes))
    return jobs


def parse_fields(text: str) -> dict[str, str]:
    """`Key=Value Key2=Value with spaces ...` (scontrol's layout) -> dict; `A=b=c` keeps `b=c` as the value."""
    keys = list(_KEY.finditer(text))
    return {m.group(1): text[m.end(): keys[i + 1].start() if i + 1 < len(keys) else len(text)].strip()
            for i, m in enumerate(keys)}


def parse_show_job(text: str) -> JobInfo | None:
    """The first job in `scontrol show job ID` output; None when it holds no job."""
    f = parse_fields(text.strip().split("\n\n")[0])
    if "JobId" not in f or "JobState" not in f:
        return None
    state = normalise_state(f["JobState"])
    return JobInfo(f["JobId"], state, _reason(f.get("Reason")),
                   start=None if state == "PENDING" else parse_time(f.get("StartTime")),
                   end=parse_time(f.get("EndTime")), nodes=_reason(f.get("NodeList")),
                   exit_code=f.get("ExitCode"), time_limit=parse_limit(f.get("TimeLimit")))


def parse_sbatch(text: str) -> str:
    """The job id from `sbatch --parsable` (`123` or `123;cluster`)."""
    first = (text.strip().splitlines() or [""])[-1].split(";")[0].strip()
    if not _JOB_ID.match(first):
        raise MihdError(f"sbatch: no job id in its output {text.strip()[:80]!r}")
    return first


def clean_env(base: dict | None = None) -> dict:
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("SQUEUE_")}
    env["SLURM_TIME_FORMAT"] = "standard"
    return env


def subprocess_runner(argv: list[str], timeout: float = TIMEOUT_S) -> tuple[int, str, str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=clean_env(),
                             stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise MihdError(f"{argv[0]}: not found on PATH (the Slurm backend needs the Slurm client commands)") from None
    except subprocess.TimeoutExpired:
        raise MihdError(f"{argv[0]}: no answer within {timeout:.0f}s (is slurmctld reachable?)") from None
    return out.returncode, out.stdout, out.stderr


def parse_kill_wait(text: str) -> float | None:
    """KillWait's seconds in `scontrol show config` output (`KillWait                = 30 sec`); None without it."""
    m = _KILL_WAIT.search(text)
    return float(m.group(1)) if m else None


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "failed")


class SlurmCommands:
    """sbatch / squeue / scontrol / scancel, each one call, each result parsed."""

    def __init__(self, runner: Runner = subprocess_runner):
        self.runner = runner

    def sbatch(self, script: str, args: list[str] = ()) -> str:
        rc, out, err = self.runner(["sbatch", "--parsable", *args, script])
        if rc != 0:
            raise MihdError(f"sbatch: {_first_error(err)}")
        return parse_sbatch(out)

    def squeue(self) -> dict[str, JobInfo]:
        """Every live job of this user, in one call; an array's tasks one by one (`-r`: `12_3`, pending ones too)."""
        rc, out, err = self.runner(["squeue", "--me", "-r", "-h", "-o", SQUEUE_FORMAT])
        if rc != 0:
            raise MihdError(f"squeue: {_first_error(err)}")
        return parse_squeue(out)

    def show_job(self, job_id: str) -> JobInfo | None:
        """One job, finished ones included (for MinJobAge after the end); None once Slurm forgot it."""
        rc, out, err = self.runner(["scontrol", "show", "job", str(job_id)])
        if rc != 0:
            if "invalid job id" in err.lower() or re.match(r"Job \S+ not found", out.strip()):  # a forgotten array task
                return None
            raise MihdError(f"scontrol show job {job_id}: {_first_error(err)}")
        return parse_show_job(out)

    def kill_wait(self) -> float | None:
        """Seconds Slurm leaves a job between its TERM (scancel, time limit) and its KILL; None when scontrol
        cannot say (not found, no answer, no KillWait line)."""
        try:
            rc, out, _ = self.runner(["scontrol", "show", "config"])
        except MihdError:
            return None
        return parse_kill_wait(out) if rc == 0 else None

    def scancel(self, job_id: str, signal: str | None = None, batch: bool = False, full: bool = False,
                pending_only: bool = False) -> str | None:
        """Cancel the job (no signal) or signal it; returns Slurm's complaint (e.g. already ended) or None.
        `pending_only` cancels just its tasks that have not started (so a freed slot starts none of them)."""
        argv = ["scancel", "--state=PENDING"] if pending_only else ["scancel"]
        if signal:
            argv.append(f"--signal={signal}")
        if full:
            argv.append("--full")
        elif batch:
            argv.append("--batch")
        rc, _, err = self.runner([*argv, str(job_id)])
        return _first_error(err) if rc != 0 or err.strip() else None


def parse_limit(text: str | None) -> float | None:
    """Seconds of a time limit as squeue's %l or scontrol's TimeLimit write it (`1:00`, `2:00:00`,
    `1-12:00:00`); None for UNLIMITED, NOT_SET, INVALID or anything else."""
    m = _LIMIT.match((text or "").strip())
    if not m:
        return None
    days, parts = int(m.group(1) or 0), [int(p) for p in m.group(2).split(":")]
    while len(parts) < 3:  # MM:SS, or bare minutes
        parts = [0, *parts] if len(parts) == 2 else [0, parts[0], 0]
    h, mi, s = parts
    return float(days * 86400 + h * 3600 + mi * 60 + s)


_LIMIT = re.compile(r"^(?:(\d+)-)?(\d+(?::\d{1,2}){0,2})$")
