"""The strongest attack per image: derived records from the per-image expected accuracies,
and how they travel through metrics.json, mra.csv, the cells and DVC's views."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clmrepro.core.per_image import pack
from clmrepro.reporting.build import merge_scores, with_strongest
from clmrepro.reporting.strongest import STRONGEST, strongest_records


def rec(attack, per_image=None, threat="adaptive", eps=0.3, r=0, population="clm", mra=None):
    out = {"experiment": "mnist", "dataset": "mnist-5k", "architecture": "lenet5",
           "population": population, "regime": population, "attack": attack,
           "attack_kind": attack, "eps": eps, "threat_model": threat,
           "mra": mra if mra is not None else float(np.mean(per_image)),
           "per_submodel": [0.5] * 4, "n_submodels": 4,
           "n_samples": len(per_image) if per_image is not None else 8, "replicate": r,
           "paper": None, "attack_params": {"eps": eps}, "transfer": None,
           "crafting": "population"}
    if per_image is not None:
        out["per_image"] = per_image
    return out


PGD = [1.0, 0.75, 0.5, 0.25, 0.0, 1.0, 1.0, 0.5]
ARC = [0.75, 1.0, 0.25, 0.5, 0.0, 0.5, 1.0, 0.25]
WORST = [0.75, 0.75, 0.25, 0.25, 0.0, 0.5, 1.0, 0.25]      # image by image: 3.75 / 8


def test_the_per_image_minimum_over_attacks_and_its_mean():
    records = [rec("pgd", PGD), rec("arc", ARC), rec("benign", [1.0] * 8, eps=0.0),
               rec("autoattack", None, mra=0.01)]                 # version 1: no per_image
    (derived,) = strongest_records(records)
    assert derived["per_image"] == WORST and derived["mra"] == pytest.approx(0.46875)
    assert (derived["attack"], derived["attack_kind"], derived["derived_from"]) == (
        STRONGEST, STRONGEST, ["arc", "pgd"])
    assert (derived["n_samples"], derived["per_submodel"], derived["paper"]) == (8, None, None)
    assert {k: derived[k] for k in ("population", "regime", "threat_model", "eps",
                                    "replicate", "dataset")} == {
        "population": "clm", "regime": "clm", "threat_model": "adaptive", "eps": 0.3,
        "replicate": 0, "dataset": "mnist-5k"}


def test_one_derived_record_per_replicate_threat_model_and_eps():
    records = [rec("pgd", PGD), rec("arc", ARC), rec("pgd", ARC, r=1),
               rec("pgd", PGD, threat="paper"), rec("fgsm", [0.0] * 8, threat="paper"),
               rec("pgd", [0.5] * 8, eps=0.4), rec("pgd", [0.0] * 8, population="ulm")]
    derived = {(d["population"], d["replicate"], d["threat_model"], d["eps"]): d
               for d in strongest_records(records)}
    assert sorted(derived) == [("clm", 0, "adaptive", 0.3), ("clm", 0, "adaptive", 0.4),
                               ("clm", 0, "paper", 0.3), ("clm", 1, "adaptive", 0.3),
                               ("ulm", 0, "adaptive", 0.3)]
    assert derived[("clm", 1, "adaptive", 0.3)]["per_image"] == ARC
    assert derived[("clm", 0, "paper", 0.3)]["mra"] == 0.0
    assert derived[("clm", 0, "adaptive", 0.4)]["derived_from"] == ["pgd"]


def test_shorter_tables_truncate_the_minimum():
    """AutoAttack scored only the first 4 images: the minimum covers those 4."""
    records = [rec("pgd", PGD), rec("autoattack", [0.0, 1.0, 0.0, 0.0])]
    (derived,) = strongest_records(records)
    assert derived["per_image"] == [0.0, 0.75, 0.0, 0.0] and derived["n_samples"] == 4
    assert derived["mra"] == pytest.approx(0.1875)


def test_strongest_records_are_not_derived_twice():
    once = with_strongest([rec("pgd", PGD), rec("arc", ARC)])
    assert [r["attack"] for r in once] == ["arc", "pgd", STRONGEST]
    assert with_strongest(once) == once
    assert strongest_records(once)[0]["derived_from"] == ["arc", "pgd"]


def table(per_image, n=4):
    """An (n, N) correctness table whose column means are the given expected accuracies."""
    out = np.zeros((n, len(per_image)), dtype=bool)
    for j, p in enumerate(per_image):
        out[: round(p * n), j] = True
    return out


def scores_record(population, attack, per_image, threat="adaptive"):
    record = rec(attack, per_image, threat=threat, population=population)
    del record["per_image"]
    record["correct"] = pack(table(per_image))
    return record


def test_metrics_json_carries_strongest_records_and_cells_without_per_image(tmp_path,
                                                                           report_tools):
    records = [scores_record("clm", "pgd", PGD), scores_record("clm", "arc", ARC)]
    autoattack = scores_record("clm", "autoattack", [1.0] * 8)   # changes no minimum
    autoattack["attack_params"] = {"eps": 0.3, "version": "rand", "eot_iter": 20,
                                   "success": "expected-accuracy"}
    out = report_tools["build"](tmp_path, records + [autoattack])
    metrics = json.loads(out["metrics"].read_text())
    assert "per_image" not in out["metrics"].read_text()
    assert "correct" not in out["metrics"].read_text()
    (strongest,) = [r for r in metrics["records"] if r["attack"] == STRONGEST]
    assert strongest["mra"] == pytest.approx(0.46875)
    assert strongest["derived_from"] == ["arc", "autoattack", "pgd"]
    (cell,) = [c for c in metrics["cells"] if c["attack"] == STRONGEST]
    assert (cell["threat_model"], cell["k"], cell["n"], cell["mean"]) == (
        "adaptive", 1, 8, 0.46875)
    dvc = json.loads(out["dvc_metrics"].read_text())
    assert dvc["mnist/clm/strongest/0.3/adaptive"] == 0.46875
    assert "mnist,clm,clm,strongest,0.3,adaptive,0,0.46875," in out["mra_csv"].read_text()
    md = out["report_md"].read_text()
    assert "| strongest (per image) |" in md.split("## Threat models")[1]
    assert "- mnist/clm adaptive ε = 0.3: ARC, AutoAttack, PGD" in md
    # the adaptive AutoAttack's departure from torchattacks' MultiAttack, with its parameters
    params = md.split("Effective parameters of the adaptive attacks:")[1]
    assert ("- AutoAttack: eot_iter=20, eps=0.3, success=expected-accuracy, version=rand. "
            "success: expected-accuracy — each sub-attack's success") in params
    assert "one random submodel's answer" in params
    assert "judges success with one random submodel" in out["report_html"].read_text()


def test_version_1_scores_derive_nothing(tmp_path):
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"schema_version": 1, "records": [
        {k: v for k, v in rec("pgd", None, mra=0.2).items() if k != "replicate"}]}))
    merged = with_strongest(merge_scores([str(path)], []))
    assert [r["attack"] for r in merged] == ["pgd"]
