"""benchmarks/recompute_results.py on a report built from constructed K = 3 records: every
cell and every claim row of metrics.json recomputes from per_image.csv.gz, and a changed
number is caught (issue 27: the results READMEs' numbers recompute from published data)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def recompute():
    spec = importlib.util.spec_from_file_location(
        "recompute_results", REPO / "benchmarks" / "recompute_results.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["recompute_results"] = module
    spec.loader.exec_module(module)
    return module


def constructed_records() -> list[dict]:
    """ULM and CLM (4 members), K = 3, benign, FGSM and PGD at ε = 0.3 under the paper
    protocol and the adaptive threat model, 30 images: random per-image tables."""
    import numpy as np

    from clmrepro.core.per_image import pack

    rng = np.random.default_rng(0)
    records = []
    for population, p_right in (("ulm", 0.35), ("clm", 0.45)):
        for replicate in range(3):
            for attack, threats in (("benign", ("paper",)), ("fgsm", ("paper", "adaptive")),
                                    ("pgd", ("paper", "adaptive"))):
                for threat in threats:
                    right = 0.95 if attack == "benign" else p_right - 0.03 * replicate
                    table = rng.random((4, 30)) < right
                    records.append({
                        "experiment": "mnist", "dataset": "mnist-5k", "architecture": "lenet5",
                        "population": population, "regime": population,
                        "replicate": replicate, "attack": attack, "attack_kind": attack,
                        "eps": 0.0 if attack == "benign" else 0.3, "threat_model": threat,
                        "mra": float(table.mean()), "n_samples": 30, "n_submodels": 4,
                        "per_submodel": table.mean(axis=1).tolist(), "paper": None,
                        "transfer": None, "crafting": "per-batch", "attack_params": {},
                        "correct": pack(table)})
    return records


@pytest.fixture(scope="module")
def published(tmp_path_factory, report_tools):
    root = tmp_path_factory.mktemp("published")
    outputs = report_tools["build"](root, constructed_records())
    return outputs["metrics"].parent


def test_every_cell_and_claim_row_recomputes(recompute, published, capsys):
    assert recompute.main([str(published)]) == 0, capsys.readouterr().out
    metrics = json.loads((published / "metrics.json").read_text())
    rows = recompute.read_rows(published)
    cells, problems = recompute.check_cells(metrics, rows)
    # per population: benign, 2 attacks x 2 threat models and the 2 strongest rows
    assert problems == [] and cells == 14
    claims, problems = recompute.check_claims(metrics, rows)
    # CLM beats ULM: FGSM, PGD (paper) and the strongest reading (adaptive), t over K = 3
    assert problems == [] and claims >= 3
    lines = recompute.strongest_lines(metrics, rows)
    assert any(line.startswith("| ULM | adaptive | 0.3 |") for line in lines), lines


@pytest.mark.parametrize("where", ["cell", "claim"])
def test_a_changed_number_is_caught(recompute, published, tmp_path, capsys, where):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("metrics.json", "per_image.csv.gz"):
        (copy / name).write_bytes((published / name).read_bytes())
    metrics = json.loads((copy / "metrics.json").read_text())
    if where == "cell":
        changed = next(c for c in metrics["cells"] if c["attack"] == "pgd" and c["k"] == 3)
        changed["high"] += 0.002
        expected = f"cell {changed['population']}/pgd"
    else:
        claim = next(c for c in metrics["claims"]
                     if any(e.get("method") == "t over replicates" for e in c["evidence"]))
        row = next(e for e in claim["evidence"] if e.get("method") == "t over replicates")
        row["mean"] -= 0.002
        expected = f"claim {claim['id']} {row['label']}"
    (copy / "metrics.json").write_text(json.dumps(metrics))
    assert recompute.main([str(copy)]) == 1
    assert expected in capsys.readouterr().out
