"""Helpers of the reliability tests: run a real step, read its stderr, build job files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
N_MODELS, N_SAMPLES = 2, 6
DATASET = {"name": "fake-cifar10", "root": "data", "n_train": 0, "n_test": N_SAMPLES,
           "split_seed": 0}
PGD = {"id": "pgd", "kind": "pgd", "eps": 0.1,
       "params": {"alpha": 0.05, "steps": 2, "random_start": True}}


def step_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "CLMREPRO_DEBUG": "", **extra}


def run_step(stage: str, job_file: Path, cwd: Path, timeout: float = 120,
             **env: str) -> subprocess.CompletedProcess:
    """The real entry point, as Snakemake runs it: ``python -m clmrepro.steps.<stage> JOB``."""
    return subprocess.run([sys.executable, "-m", f"clmrepro.steps.{stage}", str(job_file)],
                          cwd=cwd, env=step_env(**env), capture_output=True, text=True,
                          timeout=timeout)


def problem_lines(stderr: str, job: dict | None) -> list[str]:
    """stderr without the step's start line ``[clmrepro] <stage> <id>``."""
    start = f"[clmrepro] {job['stage']} {job['id']}" if job else None
    return [line for line in stderr.splitlines() if line.strip() and line != start]


def population_meta(size: int = N_MODELS, architecture: str = "lenet5") -> dict:
    return {"architecture": architecture, "regime": "ulm", "size": size, "in_channels": 3,
            "num_classes": 10, "dataset": "fake-cifar10"}


def make_job(root: Path, stage: str, *, attack: dict | None = None, size: int = N_MODELS,
             architecture: str = "lenet5", inputs: dict | None = None,
             dataset: dict | None = None) -> dict:
    """An evaluate/attack/train job over ``root/population.pt`` writing under ``root/out``."""
    job = {
        "id": f"{stage}-test-ulm", "stage": stage, "spec": "test", "experiment": "cifar",
        "seed": 7, "threads": 1, "device": "cpu", "gpu": False,
        "inputs": {"population": str(root / "population.pt")} if inputs is None else inputs,
        "outputs": {"scores": str(root / "out" / "scores.json"),
                    "analysis": str(root / "out" / "analysis.json")},
        "params": {
            "dataset": dataset or DATASET, "architecture": architecture,
            "population": {"id": "ulm", "regime": "ulm", "size": size, "from": None},
            "attack": attack, "threat_models": ["paper", "transfer"],
            "crafting": "per-batch", "n_samples": N_SAMPLES, "batch_size": 3,
            "saliency_samples": 0, "replicate": 0,
            "execution": {"population": "sequential", "memory_format": "contiguous",
                          "precision": "fp32", "clm_schedule": "sequential"},
        },
    }
    if attack is not None:
        job["inputs"]["adversarial"] = str(root / "adversarial.pt")
        job["outputs"] = {"scores": str(root / "out" / "scores.json")}
    return job


def write_job(root: Path, job: dict) -> Path:
    path = root / f"{job['id']}.json"
    path.write_text(json.dumps(job, indent=2, sort_keys=True) + "\n")
    return path
