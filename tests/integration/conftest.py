"""Shared by the lab tests (test_lab.py, test_lab_remote.py): one checkout with two specs run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from test_pipeline import copy_repo, dvc, git, run, snakemake

LAB_SPECS = ["tests/integration/lab/lab-a.yaml", "tests/integration/lab/lab-b.yaml"]


def clmrepro(cwd: Path, *args: str, check: bool = True):
    return run([sys.executable, "-m", "clmrepro.cli", *args], cwd, check=check)


def lab_checkout(target: Path, specs: list[str]) -> Path:
    """A copy of the repository with exactly these specs compiled (the demo spec's pipeline
    removed), committed, nothing built."""
    repo = copy_repo(target)
    clmrepro(repo, "remove", "smoke")
    for spec in specs:
        clmrepro(repo, "compile", spec)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "compiled: " + ", ".join(Path(spec).stem for spec in specs))
    return repo


@pytest.fixture(scope="session")
def lab_run(tmp_path_factory) -> Path:
    """lab-a (5 jobs) and lab-b (a sweep, 9 jobs) compiled side by side in one checkout, built
    by one Snakemake run, recorded by DVC, and committed (the demo spec's pipeline removed, so
    the checkout holds exactly these two)."""
    repo = lab_checkout(tmp_path_factory.mktemp("lab"), LAB_SPECS)
    snakemake(repo, "-j2")
    dvc(repo, "commit", "-f", "-q")
    clmrepro(repo, "restore")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "lab-a and lab-b run and recorded")
    return repo
