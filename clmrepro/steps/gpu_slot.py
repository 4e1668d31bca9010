"""``python -m clmrepro.steps.gpu_slot [--whole-gpu] -- CMD ...``: run CMD on a GPU slot.

Snakemake's ``resources: gpu=N`` only caps how many GPU units run at once; it never says which
GPU (REFERENCE §4).  This wrapper picks one with ``flock``s and ``exec``s CMD with
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

GPUs: ``CLMREPRO_GPUS`` (a count, for tests and odd machines), else the ids already in
``CUDA_VISIBLE_DEVICES`` (e.g. set by Slurm), else the lines of ``nvidia-smi -L``, else none,
and CMD runs unchanged.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLL_SECONDS = 0.2
MAX_SLOTS = 64


def visible_gpus(env: dict[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    if env.get("CLMREPRO_GPUS", "").strip():
        return [str(i) for i in range(int(env["CLMREPRO_GPUS"]))]
    ids = [part.strip() for part in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if part.strip()]
    if ids and ids != ["-1"]:
        return ids
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    lines = [line for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    return [str(i) for i in range(len(lines))] if listing.returncode == 0 else []


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
    env = os.environ if env is None else env
    default = Path(tempfile.gettempdir()) / f"clmrepro-gpu-locks-{os.getuid()}"
    return Path(env.get("CLMREPRO_GPU_LOCK_DIR") or default)


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
    # Named by the GPU's id, not its index: two Slurm jobs that were given different GPUs of
    # one node never wait on each other.
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
        os.execvp(args[0], args)
    try:
        slots = slots_per_gpu()
    except ValueError as error:
        print(f"[clmrepro] gpu slot: {error}", file=sys.stderr)
        return 2
    gpu, fds = acquire(gpus, lock_dir(), slots, whole)
    for fd in fds:
        os.set_inheritable(fd, True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
    share = "the whole GPU" if whole or slots == 1 else f"1 of {slots} slots"
    print(f"[clmrepro] gpu slot: CUDA_VISIBLE_DEVICES={gpu}, {share} ({len(gpus)} GPUs)",
          file=sys.stderr, flush=True)
    os.execvpe(args[0], args, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
