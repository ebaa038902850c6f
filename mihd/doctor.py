"""`mihd doctor`: what a user on a login node needs to know before working, as a list of checks.

Each check says ok, warn (works, with a caveat worth knowing) or fail (blocks work: the command exits
non-zero). Nothing here writes to the workspace; probes that can hang (sinfo) have a timeout.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from .workspace import embeddings_dir, host_index_dir, is_writable

SHARED_FS = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "fuse.sshfs", "ceph", "fuse.ceph",
             "panfs", "wekafs", "fuse.glusterfs", "9p", "fuse.juicefs"}
MIN_FREE = 200 * 10**6  # below this a single vision embedding (uni2 on DLPFC: 22 MB) may not fit with its run
LOW_FREE = 5 * 10**9


@dataclass
class Check:
    name: str
    level: str  # ok | warn | fail
    detail: str


def mount_of(path: Path) -> tuple[str, str]:
    """(mount point, file system type) holding `path`, from /proc/self/mountinfo (what statfs reports)."""
    path = str(Path(path).resolve())
    best = ("/", "unknown")
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = fields[4].encode().decode("unicode_escape")  # \040 for spaces
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, right.split()[0])
    return best


def check_filesystem(root: Path) -> Check:
    point, fstype = mount_of(root)
    if fstype in SHARED_FS or fstype.startswith("nfs"):
        meaning = (f"shared storage: the cache's files are the truth (written whole, then renamed), SQLite indexes "
                   f"stay on this host ({host_index_dir(root).parent}); other hosts see new entries and runs")
    elif fstype in ("tmpfs", "ramfs"):
        meaning = "memory-backed: lost at reboot and not seen by other nodes"
    else:
        meaning = "local disk: only this host sees it (jobs on other nodes need a shared --root)"
    return Check("file system", "ok", f"{fstype} at {point}: {meaning}")


def check_space(root: Path) -> Check:
    try:
        usage = shutil.disk_usage(root)
    except OSError as exc:
        return Check("free space", "fail", f"{root}: {exc.strerror}")
    detail = f"{usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB"
    if usage.free < MIN_FREE:
        return Check("free space", "fail", f"{detail}: too little to store embeddings")
    return Check("free space", "warn" if usage.free < LOW_FREE else "ok", detail)


def check_writable(root: Path) -> Check:
    if is_writable(root):
        index = host_index_dir(root)
        note = "" if is_writable(index) else f"; this host's index folder {index} is not writable (listing is slower)"
        return Check("workspace", "ok", f"{root} is writable{note}")
    return Check("workspace", "fail", f"{root} is read-only: listings and hits work, nothing can be computed into it "
                 "(use --root of your own with --cache-from this one)")


def check_cache(root: Path) -> Check:
    from .cache import read_entries

    if (embeddings_dir(root) / "cache.db").exists():
        return Check("cache", "warn", "old single-store layout: the next writing `mihd cache ls` converts it")
    entries = read_entries(root)
    size = sum(m.get("nbytes", 0) for m in entries)
    return Check("cache", "ok", f"{len(entries)} entries, {size / 1e9:.2f} GB")


def check_slurm() -> Check:
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return Check("slurm", "warn", "sinfo not found: runs use the local backend only")
    try:
        proc = subprocess.run([sinfo, "-h", "-o", "%P %a %D %t"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return Check("slurm", "warn", "sinfo did not answer within 10 s: the controller is unreachable")
    if proc.returncode != 0:
        return Check("slurm", "warn", f"sinfo failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    parts = sorted({r[0] for r in rows})
    return Check("slurm", "ok", f"reachable: {len(parts)} partition(s) {', '.join(parts)}")


def check_gpus(gpu=None) -> Check:
    from .runs.gpu import Gpu

    gpu = gpu or Gpu()
    devices = gpu.devices()
    if not devices:
        return Check("gpus", "warn", f"{gpu.reason or 'none'}: vision encoders run on the CPU here (slow)")
    listed = "; ".join(f"{d.index}: {d.name} ({d.mem_used / 2**30:.1f}/{d.mem_total / 2**30:.0f} GiB used)" for d in devices)
    return Check("gpus", "ok", f"NVML sees {len(devices)}: {listed}")


def check_torch() -> Check:
    try:
        import torch
    except Exception as exc:
        return Check("torch", "warn", f"not importable ({type(exc).__name__}): only pca, hvg and texture work")
    cuda = torch.version.cuda or "none (CPU build)"
    usable = torch.cuda.is_available()
    detail = f"torch {torch.__version__}, CUDA {cuda}, " + (
        f"{torch.cuda.device_count()} device(s) usable" if usable else "no CUDA device usable")
    return Check("torch", "ok", detail)


def check_encoders() -> list[Check]:
    """Which encoders can run here, and for those needing weights, where they were found or looked for."""
    from .encoders import GENE_ENCODERS, VISION_ENCODERS
    from .errors import MihdError

    free = [s.name for s in (*GENE_ENCODERS.values(), *VISION_ENCODERS.values()) if not s.needs_weights]
    out = [Check("encoders", "ok", f"usable without weights: {', '.join(free)}")]
    for spec in VISION_ENCODERS.values():
        if not spec.needs_weights:
            continue
        from .encoders.vision import find_weights

        try:
            path, where = find_weights(spec.name, {})
            out.append(Check(f"  {spec.name}", "ok", f"weights {path} ({where})"))
        except MihdError as exc:
            looked = str(exc).split("looked in: ", 1)[-1].split(". Set config", 1)[0]
            out.append(Check(f"  {spec.name}", "warn", f"no weights; looked in: {looked}"))
    out.append(_check_scgpt())
    return out


def _check_scgpt() -> Check:
    if importlib.util.find_spec("scgpt") is None:
        return Check("  scgpt", "warn", "the scgpt package is not installed")
    folder = Path(os.environ["MIHD_WEIGHTS"]) / "scgpt" if os.environ.get("MIHD_WEIGHTS") else None
    if folder is not None and (folder / "best_model.pt").is_file():
        return Check("  scgpt", "ok", f"checkpoint {folder}")
    return Check("  scgpt", "warn", f"no checkpoint in {folder or '$MIHD_WEIGHTS/scgpt (MIHD_WEIGHTS not set)'}")


def check_notify(root: Path) -> Check:
    """The notify hooks of both notify.json files: each usable, each mail server taking mail now (a warning
    only: runs go on without notifications)."""
    from .runs.notify import check

    hooks, problems = check(root)
    if problems:
        return Check("notify", "warn", "; ".join(problems))
    if not hooks:
        return Check("notify", "ok", "no hooks: no one is told when a run is late, fails or ends (notify.json)")
    return Check("notify", "ok", "; ".join(f"{h.name} on {', '.join(h.on)}" for h in hooks))


def run_checks(root: Path, gpu=None) -> list[Check]:
    """Every check, in the order shown; `gpu`: a `mihd.runs.gpu.Gpu` (its NVML seam), else the real one."""
    checks = [check_filesystem(root), check_space(root), check_writable(root), check_cache(root), check_slurm(),
              check_gpus(gpu), check_torch(), check_notify(root)]
    return checks + check_encoders()


def as_dicts(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]
