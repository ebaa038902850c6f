"""The Slurm backend: a run is a batch job whose script runs the same supervisor as a local run.

So the job leaves the same run dir behind (run.log, events.jsonl, result.json, exit.json), and exit.json
stays the final word; Slurm only answers "queued (why), running, or gone" while it has none. State comes
from one `squeue --me` call for all live jobs, cached for `cache_s` seconds so a dashboard polling often
costs the controller little; a job missing from it is asked about once with `scontrol show job` (it
may have just been submitted, ended, or belong to another user). sacct is not used: many clusters have
it, but not all, and squeue + scontrol + exit.json say enough.

Options are declared in `OPTIONS` (flags, `<root>/slurm.json` defaults and dialog fields all come from
it); `submit` receives them resolved and validated (`backends.resolve_options`), before any run dir exists.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import threading
import time
from pathlib import Path

from ...errors import MihdError
from ...jsonio import read_json, write_json_atomic
from ...rundir import BATCH_OUTPUT, BATCH_SCRIPT, EXIT, HANDLE, PROC
from ..durations import MAX_DURATION, parse_duration
from .base import GONE, QUEUED, RUNNING, UNKNOWN, Option, RunState
from .slurm_commands import JobInfo, SlurmCommands
from .slurm_words import ended_note, held_note

QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
                 "SPECIAL_EXIT"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "SUSPENDED", "STOPPED", "RESIZING"}
ENDED_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                "BOOT_FAIL", "DEADLINE", "REVOKED"}
FAILURES = {"TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}  # Slurm ended it: failed
SIGNALS_FORWARDED = ("TERM", "INT", "HUP", "USR1", "USR2")
KILL_WAIT = 30.0  # after KILL, how long to wait for Slurm to report the job gone
LIMIT_TTL = 60.0  # a running job's time limit is asked again after this long (`scontrol update` may move it)

_OWN = ("--output", "--error", "--chdir", "--parsable", "--wrap", "--array", "--test-only", "--job-name")
_OWN_SHORT = ("-o", "-e", "-D", "-a", "-J")
MAX_COUNT = 65535  # Slurm keeps CPUs per task in 16 bits; more tasks at once than that is a typo
_SLURM_TIME = re.compile(r"^(\d+-\d{1,2}(:\d{1,2}){0,2}|\d+(:\d{1,2}){0,2})$")


def _matching(pattern: str, what: str):
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"expected {what}")
        return value
    return check


def _slurm_seconds(text: str) -> int:
    """Seconds in one of Slurm's time forms: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:
        h, m, s = parts + [0] * (3 - len(parts))
    else:
        h, m, s = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
    return int(days or 0) * 86400 + h * 3600 + m * 60 + s


def slurm_time(value) -> str:
    """Slurm's own forms pass as they are (`30` = minutes, `2:00:00`, `1-12`); ours (`90m`, `2h`) convert."""
    text = str(value).strip()
    if _SLURM_TIME.match(text):
        if not 0 < _slurm_seconds(text) <= MAX_DURATION:
            raise ValueError("expected a limit from 1 minute to a year (0 would ask for none)")
        return text
    try:
        secs = int(-(-parse_duration(text) // 1))
    except MihdError:
        raise ValueError("expected a time limit such as 30 (minutes), 2:00:00, 1-12, 90m or 2h") from None
    days, rest = divmod(secs, 86400)
    hms = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{hms}" if days else hms


def _at_least_one(n: int) -> int:
    if not 1 <= n <= MAX_COUNT:
        raise ValueError(f"expected a whole number from 1 to {MAX_COUNT}")
    return n


def _sbatch_arg(arg: str) -> str:
    if not arg.startswith("-") or "\n" in arg or '"' in arg:
        raise ValueError("expected one sbatch option such as --qos=high "
                         "(write --sbatch-arg=--qos=high; no newlines or double quotes)")
    name = arg.split("=")[0]
    if name in _OWN or any(arg.startswith(s) for s in _OWN_SHORT):
        raise ValueError(f"{name} is set by mihd (the job's log goes to its run dir)")
    return arg


OPTIONS = (
    Option("partition", help="the partition (or a comma list)", metavar="NAME",
           validate=_matching(r"^[\w.,-]+$", "a partition name (or a comma list)")),
    Option("time", help="job time limit: Slurm's form (30 = minutes, 2:00:00, 1-12) or 90m, 2h",
           validate=slurm_time, metavar="LIMIT"),
    Option("cpus", type=int, help="--cpus-per-task", validate=_at_least_one, metavar="N"),
    Option("mem", help="memory per node, e.g. 16G", metavar="SIZE",
           validate=_matching(r"^\d+[KMGTkmgt]?$", "a memory size such as 16G or 4000M")),
    Option("gres", help="generic resources, e.g. gpu:1", metavar="SPEC",
           validate=_matching(r"^[\w:.,/=-]+$", "a gres spec such as gpu:1 or gpu:a100:2")),
    Option("account", metavar="NAME", help="the account to charge",
           validate=_matching(r"^[\w.-]+$", "an account name")),
    Option("sbatch_args", flag="--sbatch-arg", repeat=True, metavar="ARG", validate=_sbatch_arg,
           help="one more sbatch option, repeatable: --sbatch-arg=--qos=high"),
    Option("max_parallel", type=int, validate=_at_least_one, metavar="M",
           help="a grid's cells run as one job array, at most M tasks at once (--array=0-N%%M)"),
    Option("extract_gres", metavar="SPEC", help="a grid's vision extraction jobs: their gres (default: --gres)",
           validate=_matching(r"^[\w:.,/=-]+$", "a gres spec such as gpu:1")),
    Option("extract_cpus", type=int, validate=_at_least_one, metavar="N",
           help="a grid's extraction jobs: --cpus-per-task (default: --cpus)"),
)


def _directive(flag: str, value) -> str:
    value = str(value)
    if '"' in value or "\n" in value:
        raise MihdError(f"{flag} {value!r}: no double quotes or newlines")
    return f'#SBATCH {flag}="{value}"' if re.search(r"\s", value) else f"#SBATCH {flag}={value}"


TASK = "{index}"  # in an array script's command: the index of the cell the task runs


def _shell_word(token: str) -> str:
    """One quoted word; `{index}` in it becomes the task's cell index, expanded by the shell."""
    return '${cell_of[$SLURM_ARRAY_TASK_ID]}'.join(shlex.quote(p) if p else "" for p in token.split(TASK)) or "''"


def batch_script(run_dir: Path, argv: list[str], opts: dict, cwd: str, *, array: str | None = None,
                 order: list[int] = (), dependency: str | None = None) -> str:
    """The job script: #SBATCH lines, then the supervisor with this very Python and this checkout.

    With `array` ("0-13%2") `run_dir` is a fanned-out grid's and task t supervises `cells/<order[t]>` there
    (Slurm starts low task ids first: `order` puts the longest cells there); its Slurm output goes to
    `slurm-ARRAY_TASK.out` in the grid's run dir. `dependency` ("afterany:12:13") holds the job until those end."""
    flags = {"--partition": opts.get("partition"), "--time": opts.get("time"),
             "--cpus-per-task": opts.get("cpus"), "--mem": opts.get("mem"), "--gres": opts.get("gres"),
             "--account": opts.get("account"), "--array": array, "--dependency": dependency}
    part = run_dir / "cells" / TASK if array else run_dir
    output = run_dir / "slurm-%A_%a.out" if array else run_dir / BATCH_OUTPUT
    lines = ["#!/bin/bash", f"# MIHD run {run_dir.name}: written by mihd's Slurm backend.",
             _directive("--job-name", f"mihd-{run_dir.name}"),
             _directive("--output", output), _directive("--chdir", cwd)]
    lines += [_directive(flag, v) for flag, v in flags.items() if v is not None]
    lines += [f"#SBATCH {a}" if not re.search(r"\s", a) else _directive(*a.split("=", 1))
              for a in opts.get("sbatch_args", ())]
    pkg_parent = str(Path(__file__).resolve().parents[3])
    supervisor = [sys.executable, "-m", "mihd.runs.supervise", str(part), "--", *argv]
    lines += [
        f"cd {shlex.quote(cwd)} || exit 1",
        f"export PYTHONPATH={shlex.quote(pkg_parent)}${{PYTHONPATH:+:$PYTHONPATH}}",
        *([f"cell_of=({' '.join(map(str, order))})"] if array else []),
        "# The supervisor runs as a child, not exec'd: so it can start a session of its own and end",
        "# whatever the run leaves behind. `scancel --batch --signal=S` may reach only this shell: hand",
        "# the signal on (the supervisor forwards it to the run's process group and writes exit.json).",
        " ".join(map(_shell_word, supervisor)) + " &",
        "sup=$!",
        f"for s in {' '.join(SIGNALS_FORWARDED)}; do trap \"kill -$s $sup 2>/dev/null\" $s; done",
        "while kill -0 $sup 2>/dev/null; do wait $sup; done",
        "wait $sup",
        "",
    ]
    return "\n".join(lines)


class Backend:
    name = "slurm"
    options = OPTIONS
    cache_s = 3.0      # at most one squeue per this many seconds, however often poll is called
    exit_grace = 30.0  # a job ended this recently may still have its exit.json on the way (network fs)
    says_who_ended = True  # its final state tells a time limit or an outside scancel from a kill by mihd

    def __init__(self, commands: SlurmCommands | None = None):
        self.commands = commands or SlurmCommands()
        self._lock = threading.Lock()
        self._live: dict[str, JobInfo] = {}
        self._live_at = 0.0
        self._shown: dict[str, tuple[float, JobInfo | None]] = {}
        self._ended_seen: dict[str, float] = {}
        self._limits: dict[str, tuple[float, float | None]] = {}  # job -> (asked at, its time limit in s)

    # -- submit -----------------------------------------------------------------------------------
    def submit(self, run_dir: Path, argv: list[str], options: dict) -> dict:
        run_dir = Path(run_dir)
        handle = {"backend": self.name, "submitted": round(time.time(), 3)}
        try:
            script = run_dir / BATCH_SCRIPT
            script.write_text(batch_script(run_dir, argv, options, os.getcwd()))
            handle["job_id"] = self.commands.sbatch(str(script))
        except MihdError as exc:  # sbatch refused it, the run never started: say so in its run dir, then raise
            write_json_atomic(run_dir / EXIT, {"code": None, "signal": None, "error": str(exc), "forwarded": [],
                                               "ended": round(time.time(), 3), "written_by": "slurm submit"})
            raise
        return handle

    def submit_fanout(self, grid_dir: Path, extractions: list[tuple[Path, list[str], str]], cell_argv: list[str],
                      order: list[int], options: dict) -> dict:
        """One job per extraction (a vision one with `extract_gres`, all with `extract_cpus`), then the cells
        as one array held until every extraction has ended (afterany: a cell whose extraction failed fails
        itself, saying why; the others run). Each part's handle.json gets its job id ("A_i" for task i).
        A refused sbatch cancels what was submitted, says so in the grid's exit.json and raises."""
        grid_dir = Path(grid_dir)
        submitted = round(time.time(), 3)
        jobs: list[str] = []
        try:
            for run_dir, argv, modality in extractions:
                own = {**options, "cpus": options.get("extract_cpus") or options.get("cpus"),
                       "gres": (options.get("extract_gres") or options.get("gres")) if modality == "vision" else None}
                script = run_dir / BATCH_SCRIPT
                script.write_text(batch_script(run_dir, argv, own, os.getcwd()))
                jobs.append(self.commands.sbatch(str(script)))
                write_json_atomic(run_dir / HANDLE, {"backend": self.name, "submitted": submitted, "job_id": jobs[-1]})
            limit = f"%{options['max_parallel']}" if options.get("max_parallel") else ""
            script = grid_dir / BATCH_SCRIPT
            script.write_text(batch_script(grid_dir, cell_argv, options, os.getcwd(), array=f"0-{len(order) - 1}{limit}",
                                           order=order, dependency="afterany:" + ":".join(jobs) if jobs else None))
            array = self.commands.sbatch(str(script))
        except MihdError as exc:
            for job in jobs:
                self.commands.scancel(job)
            write_json_atomic(grid_dir / EXIT, {"code": None, "signal": None, "error": str(exc), "forwarded": [],
                                                "ended": round(time.time(), 3), "written_by": "slurm submit"})
            raise
        for task, i in enumerate(order):
            write_json_atomic(grid_dir / "cells" / str(i) / HANDLE,
                              {"backend": self.name, "submitted": submitted, "job_id": f"{array}_{task}"})
        return {"backend": self.name, "submitted": submitted, "job_id": array, "fanout": True, "extract_jobs": jobs}

    # -- state ------------------------------------------------------------------------------------
    def _squeue(self, newest_submit: float) -> tuple[dict[str, JobInfo], float]:
        """All live jobs and when squeue said so (asked again when older than cache_s or a submit)."""
        with self._lock:
            if time.time() - self._live_at > self.cache_s or newest_submit >= self._live_at:
                at = time.time()
                self._live, self._live_at = self.commands.squeue(), at
            return self._live, self._live_at

    def _show(self, job_id: str) -> tuple[JobInfo | None, float]:
        with self._lock:
            at, info = self._shown.get(job_id, (0.0, None))
            final = info is not None and _ended(info)
            if not final and time.time() - at > self.cache_s:
                at = time.time()
                info = self.commands.show_job(job_id)
                self._shown[job_id] = (at, info)
            return info, at

    def poll(self, handles: dict[str, dict]) -> dict[str, RunState]:
        newest = max((h.get("submitted") or 0.0 for h in handles.values()), default=0.0)
        live, live_at = self._squeue(newest) if any(h.get("job_id") for h in handles.values()) else ({}, 0.0)
        states = {}
        for run_id, handle in handles.items():
            job = str(handle.get("job_id") or "")
            if not job:
                states[run_id] = RunState(GONE, reason="never submitted to Slurm (see exit.json / run dir)")
                continue
            info, at = live.get(job), live_at
            if info is None or _ended(info):
                info, at = self._show(job)
            states[run_id] = self._state(handle, job, info, at)
        return states

    def _state(self, handle: dict, job: str, info: JobInfo | None, at: float) -> RunState:
        run_dir = Path(handle["run_dir"])
        if info is not None and info.state in QUEUED_STATES:
            ident = read_json(run_dir / PROC) if _mtime(run_dir / PROC) > at else None
            if ident:  # the supervisor started after Slurm's (cached) answer: it runs
                return RunState(RUNNING, started=ident.get("started"))
            why = "held" if (info.reason or "").startswith("JobHeld") else info.reason
            word = "pending" if info.state == "PENDING" else info.state.lower()
            return RunState(QUEUED, reason=f"{word}: {why}" if why else word)
        if info is not None and info.state in RUNNING_STATES:
            return RunState(RUNNING, reason=held_note(info.state), started=info.start, time_limit=self._limit(job))
        if info is not None and not _ended(info):
            return RunState(UNKNOWN, reason=f"Slurm: job {job} in state {info.state}")
        if (run_dir / EXIT).exists():  # the watcher reads exit.json: done, failed or killed
            if info is None or info.state == "COMPLETED":
                return RunState(GONE)
            final = self._remember(handle, info)  # e.g. TIMEOUT: the registry says so instead of "killed"
            return RunState(GONE, reason=(final or handle).get("outcome", {}).get("note"), handle=final)
        if info is None:
            what = f"Slurm: job {job} no longer known"
        else:
            what = f"Slurm: job {job} {info.state}" + (f" ({info.reason})" if info.reason else "")
        if info is not None and (run_dir / PROC).exists():  # the supervisor ran: exit.json may be on its way
            ended = info.end or self._ended_seen.setdefault(job, time.time())
            if time.time() - ended < self.exit_grace:
                return RunState(UNKNOWN, reason=f"{what}; waiting for its exit.json")
        final = self._remember(handle, info)
        return RunState(GONE, reason=f"{what}, without exit.json; see slurm-{job}.out in its run dir", handle=final)

    @staticmethod
    def _remember(handle: dict, info: JobInfo | None) -> dict | None:
        """Keep Slurm's last word in handle.json as the backend-neutral `outcome` (so it survives a reindex):
        {"status": "failed" when Slurm ended the job (time limit, memory, node), else None, "note": its words}.
        The new handle, or None if unchanged."""
        stored = {k: v for k, v in handle.items() if k != "run_dir"}
        note = ended_note(info, Path(handle["run_dir"])) if info else "Slurm: job forgotten"
        final = {**stored, "outcome": {"status": "failed" if info and info.state in FAILURES else None, "note": note}}
        if final == stored:
            return None
        write_json_atomic(Path(handle["run_dir"]) / HANDLE, final)
        return final

    @staticmethod
    def legacy_outcome(handle: dict) -> dict | None:
        """The outcome of a handle.json written by an earlier release (`slurm_state`, `slurm_reason`)."""
        state = handle.get("slurm_state")
        if not state:
            return None
        reason = handle.get("slurm_reason")
        return {"status": "failed" if state in FAILURES else None,
                "note": f"Slurm {state}" + (f" ({reason})" if reason else "")}

    def _limit(self, job: str) -> float | None:
        """The running job's time limit (its own --time, else its partition's default), asked at most every
        LIMIT_TTL s; None when unlimited or Slurm does not say."""
        at, limit = self._limits.get(job, (0.0, None))
        if time.time() - at > LIMIT_TTL:
            try:
                info = self.commands.show_job(job)
            except MihdError:
                return limit
            at, limit = time.time(), info.time_limit if info else None
            self._limits[job] = (at, limit)
        return limit

    def process_root(self, handle: dict) -> tuple[int, float] | None:
        return None  # the job's processes live on a compute node

    # -- kill -------------------------------------------------------------------------------------
    def _wait_ended(self, job: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            info = self.commands.show_job(job)
            if info is None or _ended(info):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def _scancel(self, job: str, **kw) -> None:
        complaint = self.commands.scancel(job, **kw)
        if complaint and re.search(r"denied|not authori|permission", complaint, re.I):
            raise MihdError(f"Slurm job {job}: scancel refused: {complaint}")

    def kill(self, handle: dict, signal: str, grace: float) -> dict:
        """TERM/INT to the batch shell (which hands it to the supervisor), KILL to every step after
        `grace`; a job still pending is simply cancelled. `ended` is True only once Slurm has let go."""
        job = str(handle.get("job_id") or "")
        if not job:
            raise MihdError(f"run {Path(handle['run_dir']).name}: no Slurm job id (it was never submitted)")
        info = self.commands.show_job(job)
        out = {"signal": signal, "escalated": False, "survivors": 0, "ended": True, "job_id": job}
        if info is None or _ended(info):
            return out
        if info.state not in RUNNING_STATES:  # pending (or odd): nothing of it runs yet, cancel it
            self._scancel(job)
        elif signal == "KILL":
            self._scancel(job, signal="KILL", full=True)
        else:
            self._scancel(job, signal=signal, batch=True)
        ended = self._wait_ended(job, grace if signal != "KILL" else KILL_WAIT)
        if not ended:
            out["escalated"] = True
            self._scancel(job, signal="KILL", full=True)
            ended = self._wait_ended(job, KILL_WAIT)
        if not ended:
            self._scancel(job)  # cancel the job itself, whatever its steps do
            ended = self._wait_ended(job, KILL_WAIT)
        with self._lock:
            self._live_at = 0.0  # the next poll asks Slurm afresh
            self._shown.pop(job, None)
        return {**out, "survivors": 0 if ended else 1, "ended": ended}


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _ended(info: JobInfo) -> bool:
    return info.state in ENDED_STATES
