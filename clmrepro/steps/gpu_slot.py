"""``python -m clmrepro.steps.gpu_slot [--whole-gpu] -- CMD ...``: run CMD on a GPU slot.

Snakemake's ``resources: gpu=N`` only caps how many GPU units run at once; it never says which
GPU (docs/reference.md §4).  This wrapper picks one with ``flock``s and ``exec``s CMD with
``CUDA_VISIBLE_DEVICES`` set; the locks belong to the job's own process and are released when
it exits, even on SIGKILL.  No torch import: it must start fast.

Slots (issue 10): each GPU has K slots (``CLMREPRO_SLOTS_PER_GPU``, default 1; the Snakefile
sets it from the config key ``slots_per_gpu``).  A plain job takes one slot, so K LeNet5-sized
jobs share a GPU; a ``--whole-gpu`` job (ResNet18) takes the GPU alone.  Per GPU g, in the lock
folder:

- ``gpu-g.lock``: a slot holder keeps a shared lock on it, a whole-GPU job an exclusive one;
- ``gpu-g-slot-s.lock`` (s < K): a slot holder keeps an exclusive lock on one of them;
- ``gpu-g.claim``: a whole-GPU job that waits for g holds it, and no new slot job starts on g,
  so a stream of small jobs cannot starve it.

Slot jobs fill the lowest-numbered GPU first, which keeps whole GPUs free for whole-GPU jobs.

Which GPUs, and what names their locks (issue 30): a lock is named by what identifies the GPU
on the node, never by an index another job may see too.

- ``CLMREPRO_GPUS``: a count of fake GPUs ``0``..``n-1`` (tests and odd machines).
- ``CUDA_VISIBLE_DEVICES`` set to ``""`` or starting with ``-1``: GPUs deliberately hidden;
  CMD runs unchanged on the CPU (nothing exported, no lock).
- ``CUDA_VISIBLE_DEVICES`` set by Slurm (``SLURM_JOB_ID`` with ``SLURM_STEP_GPUS`` or
  ``SLURM_JOB_GPUS``): Slurm gave these GPUs to this job alone, and a site that confines each
  job to its GPU shows every job its GPU as ``0``; the locks go in a folder of this job
  (``slurm-<job id>`` in the lock folder), so only the job's own rules share them.
- other ``CUDA_VISIBLE_DEVICES`` ids: a UUID (``GPU-...``, ``MIG-...``) names itself; an index
  is named by the UUID ``nvidia-smi`` gives that index (its own name when nvidia-smi cannot
  tell; CUDA numbers GPUs fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, nvidia-smi by
  PCI bus, which agree on a node of one GPU model).  CMD gets the id as it was.
- unset: the GPUs of ``nvidia-smi -L``, named by UUID and exported as their UUID (exact
  whatever ``CUDA_DEVICE_ORDER`` says); a GPU split into MIG instances gives one place per
  instance, exported as its ``MIG-`` UUID (CUDA addresses MIG instances only by UUID).
- no nvidia-smi: no GPU, and CMD runs unchanged.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

POLL_SECONDS = 0.2
MAX_SLOTS = 64
SLURM_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS")
_GPU_LINE = re.compile(r"^GPU (\d+):.*\(UUID: ([^)]+)\)")
_MIG_LINE = re.compile(r"^\s+MIG .*\(UUID: ([^)]+)\)")


@dataclass(frozen=True)
class Gpu:
    export: str                      # what CMD gets in CUDA_VISIBLE_DEVICES
    key: str                         # what names its lock files

    @property
    def lock_name(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", self.key)


def nvidia_smi_listing(env: dict[str, str]) -> list[tuple[str, str, list[str]]] | None:
    """(index, UUID, MIG UUIDs) per GPU of ``nvidia-smi -L`` (found on env's PATH); None
    without nvidia-smi."""
    command = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
    if command is None:
        return None
    try:
        done = subprocess.run([command, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    gpus: list[tuple[str, str, list[str]]] = []
    for line in done.stdout.splitlines():
        if (gpu := _GPU_LINE.match(line)) is not None:
            gpus.append((gpu.group(1), gpu.group(2).strip(), []))
        elif (mig := _MIG_LINE.match(line)) is not None and gpus:
            gpus[-1][2].append(mig.group(1).strip())
    return gpus


def slurm_job(env: dict[str, str]) -> str | None:
    """The Slurm job that was given this process's GPUs, if Slurm gave them."""
    job = env.get("SLURM_JOB_ID", "").strip()
    if job and any(env.get(var, "").strip() for var in SLURM_GPU_VARIABLES):
        return job
    return None


def hidden(env: dict[str, str]) -> bool:
    """CUDA_VISIBLE_DEVICES set to hide every GPU: empty, or its first id -1 (CUDA stops at
    the first id that names no device)."""
    if "CUDA_VISIBLE_DEVICES" not in env:
        return False
    first = env["CUDA_VISIBLE_DEVICES"].split(",")[0].strip()
    return first == "" or first.startswith("-")


def visible_gpus(env: dict[str, str] | None = None, listing=nvidia_smi_listing) -> list[Gpu]:
    env = os.environ if env is None else env
    if env.get("CLMREPRO_GPUS", "").strip():
        return [Gpu(str(i), str(i)) for i in range(int(env["CLMREPRO_GPUS"]))]
    if hidden(env):
        return []
    ids = [part.strip() for part in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    if ids:
        if slurm_job(env) or all(i.startswith(("GPU-", "MIG-")) for i in ids):
            return [Gpu(i, i) for i in ids]
        known = {index: uuid for index, uuid, _ in (listing(env) or [])}
        return [Gpu(i, known.get(i, i)) for i in ids]
    gpus = []
    for _index, uuid, migs in listing(env) or []:
        gpus += [Gpu(m, m) for m in migs] if migs else [Gpu(uuid, uuid)]
    return gpus


def slots_per_gpu(env: dict[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    text = env.get("CLMREPRO_SLOTS_PER_GPU", "").strip() or "1"
    try:
        slots = int(text)
    except ValueError:
        slots = 0
    if not 1 <= slots <= MAX_SLOTS:
        raise ValueError(f"CLMREPRO_SLOTS_PER_GPU (config slots_per_gpu) must be a whole number "
                         f"from 1 to {MAX_SLOTS} (got {text!r})")
    return slots


def lock_dir(env: dict[str, str] | None = None) -> Path:
    """The lock folder: per user (``CLMREPRO_GPU_LOCK_DIR`` overrides), and inside it one
    folder per Slurm job when Slurm gave the GPUs (see the module's docstring)."""
    env = os.environ if env is None else env
    default = Path(tempfile.gettempdir()) / f"clmrepro-gpu-locks-{os.getuid()}"
    base = Path(env.get("CLMREPRO_GPU_LOCK_DIR") or default)
    job = slurm_job(env) if not env.get("CLMREPRO_GPUS", "").strip() else None
    return base / f"slurm-{job}" if job else base


def _try_lock(path: Path, mode: int) -> int | None:
    """An open descriptor holding ``mode`` on ``path``, or None if another process blocks it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def is_claimed(directory: Path, gpu: str) -> bool:
    """True while a whole-GPU job waits for ``gpu`` (it holds the claim)."""
    fd = _try_lock(directory / f"gpu-{gpu}.claim", fcntl.LOCK_SH)
    if fd is None:
        return True
    os.close(fd)
    return False


def _try_slot(directory: Path, gpu: str, slots: int) -> list[int] | None:
    if is_claimed(directory, gpu):
        return None
    shared = _try_lock(directory / f"gpu-{gpu}.lock", fcntl.LOCK_SH)
    if shared is None:
        return None
    for slot in range(slots):
        fd = _try_lock(directory / f"gpu-{gpu}-slot-{slot}.lock", fcntl.LOCK_EX)
        if fd is not None:
            return [shared, fd]
    os.close(shared)
    return None


def acquire(gpus: list[str], directory: Path, slots: int = 1, whole: bool = False,
            poll: float = POLL_SECONDS) -> tuple[str, list[int]]:
    """Block until this job has its place; return the GPU id and the open, locked descriptors
    (keep them open for the job's lifetime)."""
    directory.mkdir(parents=True, exist_ok=True)
    claim: tuple[str, int] | None = None
    while True:
        for gpu in gpus:
            if not whole:
                held = _try_slot(directory, gpu, slots)
                if held is not None:
                    return gpu, held
                continue
            mine = claim is not None and claim[0] == gpu
            if not mine and is_claimed(directory, gpu):
                continue
            fd = _try_lock(directory / f"gpu-{gpu}.lock", fcntl.LOCK_EX)
            if fd is not None:
                if claim is not None:
                    os.close(claim[1])
                return gpu, [fd]
        if whole and claim is None:
            for gpu in gpus:
                fd = _try_lock(directory / f"gpu-{gpu}.claim", fcntl.LOCK_EX)
                if fd is not None:
                    claim = (gpu, fd)
                    break
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    whole = False
    if args[:1] == ["--whole-gpu"]:
        whole, args = True, args[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 0 if args else 2
    gpus = visible_gpus()
    if not gpus:
        os.execvp(args[0], args)      # no GPU, or hidden on purpose: CUDA_VISIBLE_DEVICES as it was
    try:
        slots = slots_per_gpu()
    except ValueError as error:
        print(f"[clmrepro] gpu slot: {error}", file=sys.stderr)
        return 2
    by_name = {gpu.lock_name: gpu for gpu in gpus}
    name, fds = acquire(list(by_name), lock_dir(), slots, whole)
    for fd in fds:
        os.set_inheritable(fd, True)
    gpu = by_name[name].export
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    share = "the whole GPU" if whole or slots == 1 else f"1 of {slots} slots"
    print(f"[clmrepro] gpu slot: CUDA_VISIBLE_DEVICES={gpu}, {share} ({len(gpus)} GPUs)",
          file=sys.stderr, flush=True)
    os.execvpe(args[0], args, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
