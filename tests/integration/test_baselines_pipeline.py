"""The diversity baselines end to end: tests/integration/baselines-tiny.yaml (ULM, CLM, ADP and
DVERGE from the ULM, K = 2) through Snakemake's real steps to the report's Baselines section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_pipeline import copy_repo, run, snakemake

SPEC = "tests/integration/baselines-tiny.yaml"


@pytest.mark.slow
def test_baselines_train_jointly_are_attacked_like_clm_and_compared_in_the_report(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    run([sys.executable, "-m", "clmrepro.cli", "compile", SPEC], repo)
    snakemake(repo, "-j2", "--config", "spec=baselines-tiny")
    results = repo / "results/baselines-tiny/mnist"
    for replicate in ("r0", "r1"):
        adp = json.loads((results / f"adp/{replicate}/training.json").read_text())
        dverge = json.loads((results / f"dverge/{replicate}/training.json").read_text())
        assert adp["regime"] == "adp" and adp["diversity"]["method"] == "adp"
        assert {"ce", "ensemble_entropy", "log_det"} <= set(adp["diversity"]["terms"][0])
        assert dverge["regime"] == "dverge" and dverge["from"] == "ulm"
    metrics = json.loads((repo / "reports/baselines-tiny/metrics.json").read_text())
    scored = {(r["population"], r["attack"], r["threat_model"]) for r in metrics["records"]}
    for population in ("ulm", "clm", "adp", "dverge"):
        assert {(population, "pgd", "paper"), (population, "pgd", "adaptive")} <= scored
    report = (repo / "reports/baselines-tiny/report.md").read_text()
    section = report.split("## Baselines", 1)[1].split("\n## ", 1)[0]
    assert "### mnist, paper protocol" in section and "### mnist, adaptive" in section
    # a verdict row per baseline, attack and threat model (2 × (FGSM, PGD, strongest) × 2)
    verdicts = [line for line in section.splitlines() if line.startswith("| mnist        | ")
                and (" adp  " in line or " dverge " in line) and "ε 0.3," in line]
    assert len(verdicts) == 12, section
    assert (repo / "reports/baselines-tiny/figures/baselines-cost-mnist.png").is_file()
