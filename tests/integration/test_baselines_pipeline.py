"""The diversity baselines end to end: tests/integration/baselines-tiny.yaml (ULM, CLM, ADP and
DVERGE from the ULM, K = 1) through Snakemake's real steps to the report's Baselines section."""

from __future__ import annotations

import json
import sys

import pytest
import torch

from test_pipeline import copy_repo, run, snakemake

SPEC = "tests/integration/baselines-tiny.yaml"


@pytest.mark.slow
def test_baselines_train_jointly_are_attacked_like_clm_and_compared_in_the_report(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    run([sys.executable, "-m", "clmrepro.cli", "compile", SPEC], repo)
    snakemake(repo, "-j2", "--config", "spec=baselines-tiny")
    results = repo / "results/baselines-tiny/mnist"
    adp = json.loads((results / "adp/training.json").read_text())
    dverge = json.loads((results / "dverge/training.json").read_text())
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

    # every inference rule: average and vote scored on the paper protocol's images and on the
    # set crafted white-box on the averaged population, in their own section only
    rules = {(r["population"], r["attack"], r["threat_model"], r.get("inference", "random"))
             for r in metrics["records"]}
    for rule in ("average", "vote"):
        assert {("adp", "benign", "paper", rule), ("adp", "pgd", "paper", rule),
                ("adp", "pgd", "adaptive", rule)} <= rules
    adversarial = torch.load(results / "adp/attacks/pgd-eps0.3/adversarial.pt",
                             weights_only=False)
    assert adversarial["adaptive-average"]["x_adv"].shape == adversarial["adaptive"]["x_adv"].shape
    assert not torch.equal(adversarial["adaptive-average"]["x_adv"], adversarial["adaptive"]["x_adv"])
    inference = report.split("## Inference rules", 1)[1].split("\n## ", 1)[0]
    assert "| population   | attack     | random" in inference and "| vote" in inference
    assert "### mnist, adaptive" in inference
    # the strongest attack per image is taken over random dispatch's records only
    strongest = [r for r in metrics["records"] if r["attack"] == "strongest"]
    assert strongest and all("inference" not in r for r in strongest)
