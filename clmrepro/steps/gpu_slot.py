"""``python -m clmrepro.steps.gpu_slot -- CMD ...``: run CMD on a GPU no other job holds.

Snakemake's ``resources: gpu=1`` only caps how many GPU jobs run at once; it never says which
GPU (REFERENCE §4).  This wrapper takes a non-blocking ``flock`` on one lock file per GPU, sets
``CUDA_VISIBLE_DEVICES`` to that GPU and ``exec``s CMD: the lock belongs to the job's own
process and is released when it exits, even on SIGKILL.  No torch import: it must start fast.

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


def lock_dir(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    default = Path(tempfile.gettempdir()) / f"clmrepro-gpu-locks-{os.getuid()}"
    return Path(env.get("CLMREPRO_GPU_LOCK_DIR") or default)


def acquire(gpus: list[str], directory: Path, poll: float = POLL_SECONDS) -> tuple[str, int]:
    """Block until one GPU's lock is free; return its id and the open, locked descriptor."""
    directory.mkdir(parents=True, exist_ok=True)
    while True:
        for gpu in gpus:
            # Named by the GPU's id, not its slot: two Slurm jobs that were given different
            # GPUs of one node never wait on each other.
            fd = os.open(directory / f"gpu-{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return gpu, fd
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 0 if args else 2
    gpus = visible_gpus()
    if not gpus:
        os.execvp(args[0], args)
    gpu, fd = acquire(gpus, lock_dir())
    os.set_inheritable(fd, True)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu, "CLMREPRO_GPU_LOCK_FD": str(fd)}
    print(f"[clmrepro] gpu slot: CUDA_VISIBLE_DEVICES={gpu} ({len(gpus)} GPUs)", file=sys.stderr,
          flush=True)
    os.execvpe(args[0], args, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
