"""What every step shares: read a job file, set threads and device, report progress.

A step is ``python -m clmrepro.steps.<stage> JOB.json``: a typed ``run_<stage>(job)`` that
does the work and a thin ``main(argv)``.  The job file (docs/architecture.md) holds every
input, output and parameter, so Snakemake and DVC run the very same command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

Job = dict[str, Any]


def load_job(path: str | Path) -> Job:
    with open(path, encoding="utf-8") as handle:
        job = json.load(handle)
    for key in ("id", "stage", "inputs", "outputs", "params"):
        if key not in job:
            raise ValueError(f"{path}: job file lacks '{key}'")
    return job


def prepare_torch(job: Job):
    """Fix the thread count from the plan (not from the executor) so numbers do not depend
    on where the job ran, and return the device the job asked for."""
    import torch

    from clmrepro.core.devices import resolve_device

    torch.set_num_threads(int(job.get("threads", 1)))
    torch.use_deterministic_algorithms(True, warn_only=True)
    return resolve_device(job.get("device", "auto"))


def show_progress() -> bool:
    return sys.stderr.isatty()


def step_main(run: Callable[[Job], None], argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m clmrepro.steps.<stage> JOB.json", file=sys.stderr)
        return 2
    job = load_job(args[0])
    print(f"[clmrepro] {job['stage']} {job['id']}", file=sys.stderr, flush=True)
    run(job)
    return 0
