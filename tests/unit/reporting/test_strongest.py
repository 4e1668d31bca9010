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


# ---- the check files' attacks join the minimum (issue 26, Build item 1) ----------------------

def raw_check_file(population="clm", r=0, eps=0.3, **sections):
    """A check file as the sanity job writes it: per threat model, each attack's params and
    its (n, N) correctness table."""
    return {"schema_version": 1, "experiment": "mnist", "population": population,
            "regime": population, "replicate": r, "n_submodels": 4, "eps": eps,
            "n_samples": 4,
            "threat_models": {threat: {"attacks": {
                name: {"params": params, "correct": pack(table(values))}
                for name, (params, values) in attacks.items()}}
                for threat, attacks in sections.items()}}


def decoded(*files):
    from clmrepro.reporting.sanity import decode_check_file
    return [decode_check_file(f) for f in files]


PGD_PARAMS = {"eps": 0.3, "alpha": 0.01, "steps": 40, "random_start": True}
# on the first 4 images the grid's minimum is .75 .75 .25 .25; Square goes lower on images 0
# and 3, the doubled steps on image 1; the unbounded PGD (ε 1) breaks every image and must not
# count, nor the paper section, nor replicate 1's file
SQUARE = [0.25, 1.0, 0.5, 0.0]
DOUBLED = [1.0, 0.5, 0.25, 0.5]
CHECKS = dict(adaptive={"pgd": (PGD_PARAMS, [1.0, 1.0, 0.5, 0.5]),
                        "pgd-2x-steps": ({**PGD_PARAMS, "steps": 80}, DOUBLED),
                        "square": ({"eps": 0.3, "n_queries": 5000}, SQUARE),
                        "noise": ({"draws": 20}, [1.0, 1.0, 1.0, 1.0]),   # the file's ε
                        "pgd-unbounded": ({**PGD_PARAMS, "eps": 1.0}, [0.0] * 4)},
              paper={"square": ({"eps": 0.3}, [0.0] * 4)})


def test_check_attacks_lower_than_the_grid_join_the_minimum_on_the_shared_images():
    files = decoded(raw_check_file(**CHECKS),
                    raw_check_file(r=1, adaptive={"square": ({"eps": 0.3}, [0.0] * 4)}))
    derived = {(d["replicate"], d["threat_model"]): d
               for d in strongest_records([rec("pgd", PGD), rec("arc", ARC),
                                           rec("pgd", PGD, threat="paper")], files)}
    adaptive = derived[(0, "adaptive")]
    # per image: min(.75 grid, .25 square), min(.75, .5 doubled), .25, min(.25, 0 square)
    assert adaptive["per_image"] == [0.25, 0.5, 0.25, 0.0]
    assert adaptive["n_samples"] == 4 and adaptive["mra"] == pytest.approx(0.25)
    assert adaptive["derived_from"] == ["arc", "check:noise", "check:pgd",
                                        "check:pgd-2x-steps", "check:square", "pgd"]
    # the paper section joins the paper group only; replicate 1's file opens no group
    assert derived[(0, "paper")]["derived_from"] == ["check:square", "pgd"]
    assert derived[(0, "paper")]["mra"] == 0.0
    assert sorted(derived) == [(0, "adaptive"), (0, "paper")]
    assert (adaptive["upper_bound"], adaptive["flagged_by"]) == (False, [])


def test_a_check_file_at_another_eps_leaves_the_strongest_row_as_the_grid_makes_it():
    at_04 = {threat: {name: ({**params, "eps": 0.4} if params.get("eps") == 0.3 else params,
                             values) for name, (params, values) in attacks.items()}
             for threat, attacks in CHECKS.items()}
    files = decoded(raw_check_file(eps=0.4, **at_04))
    (derived,) = strongest_records([rec("pgd", PGD), rec("arc", ARC)], files)
    assert derived["per_image"] == WORST and derived["derived_from"] == ["arc", "pgd"]


def test_a_flag_marks_the_strongest_rows_of_its_population_and_threat_model():
    from types import SimpleNamespace

    from clmrepro.reporting.strongest import mark_upper_bounds
    records = with_strongest([rec("pgd", PGD), rec("pgd", PGD, threat="paper"),
                              rec("pgd", PGD, eps=0.4), rec("pgd", PGD, population="ulm")])
    results = [SimpleNamespace(experiment="mnist", population="clm", threat_model="adaptive",
                               check=check, verdict=verdict)
               for check, verdict in (("convergence", "flag"), ("budget", "pass"),
                                      ("gradient-free", "flag"), ("convergence", "flag"))]
    marked = {(r["population"], r["threat_model"], r["eps"]): r for r in
              mark_upper_bounds(records, results) if r["attack"] == STRONGEST}
    for key in (("clm", "adaptive", 0.3), ("clm", "adaptive", 0.4)):
        assert marked[key]["upper_bound"] is True
        assert marked[key]["flagged_by"] == ["convergence", "gradient-free"]
    for key in (("clm", "paper", 0.3), ("ulm", "adaptive", 0.3)):
        assert (marked[key]["upper_bound"], marked[key]["flagged_by"]) == (False, [])
    assert not any("upper_bound" in r for r in records if r["attack"] != STRONGEST)


def test_a_flagged_check_makes_the_strongest_cell_an_upper_bound_in_metrics_and_report(
        tmp_path, report_tools):
    """Square (a check attack) beats the grid on CLM's images 0 and 3 and the doubled steps
    beat PGD: the gradient-free and convergence checks flag CLM adaptive, and the strongest
    row that took both says it is an upper bound, naming them."""
    records = [scores_record(p, attack, values) for p in ("clm", "ulm")
               for attack, values in (("pgd", PGD), ("arc", ARC))]
    out = report_tools["build"](tmp_path, records, [raw_check_file(**CHECKS)])
    metrics = json.loads(out["metrics"].read_text())
    # Square below the gradient attacks, and the doubled steps below PGD, both on CLM
    flags = [(s["population"], s["threat_model"], s["check"]) for s in metrics["sanity"]
             if s["verdict"] == "flag"]
    assert flags == [("clm", "adaptive", "convergence"), ("clm", "adaptive", "gradient-free")]
    strongest = {(r["population"], r["threat_model"]): r for r in metrics["records"]
                 if r["attack"] == STRONGEST}
    clm = strongest[("clm", "adaptive")]
    assert clm["n_samples"] == 4 and clm["mra"] == pytest.approx(0.25)
    assert "check:square" in clm["derived_from"]
    assert (clm["upper_bound"], clm["flagged_by"]) == (True, ["convergence", "gradient-free"])
    # ULM has no check file: its row is the grid's, over all 8 images, and no check flags it
    ulm = strongest[("ulm", "adaptive")]
    assert (ulm["n_samples"], ulm["derived_from"], ulm["upper_bound"]) == (
        8, ["arc", "pgd"], False)
    cells = {(c["population"], c["threat_model"]): c for c in metrics["cells"]
             if c["attack"] == STRONGEST}
    assert (cells[("clm", "adaptive")]["upper_bound"],
            cells[("clm", "adaptive")]["flagged_by"], cells[("clm", "adaptive")]["n"]) == (
        True, ["convergence", "gradient-free"], 4)
    assert "check:square" in cells[("clm", "adaptive")]["derived_from"]
    assert cells[("ulm", "adaptive")]["upper_bound"] is False
    # the claim under the strongest attack reads the new rows and carries the bound
    (claim,) = [c for c in metrics["claims"] if c["strongest"] is not None
                and c["strongest"]["evidence"][0]["left"] == "CLM"
                and c["strongest"]["evidence"][0]["right"] == "ULM"][:1]
    evidence = claim["strongest"]["evidence"][0]
    # on the 4 images both rows share (ULM's grid row has 8): CLM .25, ULM .75 .75 .25 .25
    assert (evidence["mean"], evidence["n"], evidence["method"]) == (
        pytest.approx(-0.25), 4, "t over paired samples")
    assert evidence["label"].endswith(
        "upper bound (flagged by convergence, gradient-free vs gradient-based)")
    md = out["report_md"].read_text()
    threat = md.split("## Threat models")[1].split("\n\n## ")[0]
    (row,) = [line for line in threat.splitlines()
              if line.startswith("| mnist") and "| clm " in line and "strongest" in line]
    assert ("25.00% [" in row and "(K=1, N=4) — upper bound (flagged by convergence, "
            "gradient-free vs gradient-based)" in row)
    (row,) = [line for line in threat.splitlines()
              if line.startswith("| mnist") and "| ulm " in line and "strongest" in line]
    assert "upper bound" not in row
    assert "These strongest numbers are an upper bound (flagged by convergence, gradient" in md
    html = out["report_html"].read_text()
    assert 'class="reproduced upper-bound"' in html
    assert "upper bound (flagged by convergence, gradient-free" in html
