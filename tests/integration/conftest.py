"""Shared by the lab tests (test_lab.py, test_lab_remote.py): one checkout with two specs run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from test_pipeline import copy_repo, dvc, git, run, snakemake

LAB_SPECS = ["tests/integration/lab/lab-a.yaml", "tests/integration/lab/lab-b.yaml"]


def clmrepro(cwd: Path, *args: str, check: bool = True):
    return run([sys.executable, "-m", "clmrepro.cli", *args], cwd, check=check)


@pytest.fixture(scope="session")
def lab_run(tmp_path_factory) -> Path:
    """lab-a (5 jobs) and lab-b (a sweep, 9 jobs) compiled side by side in one checkout, built
    by one Snakemake run, recorded by DVC, and committed (the demo spec's pipeline removed, so
    the checkout holds exactly these two)."""
    repo = copy_repo(tmp_path_factory.mktemp("lab"))
    clmrepro(repo, "remove", "smoke")
    for spec in LAB_SPECS:
        clmrepro(repo, "compile", spec)
    snakemake(repo, "-j2")
    dvc(repo, "commit", "-f", "-q")
    clmrepro(repo, "restore")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "lab-a and lab-b run and recorded")
    return repo
