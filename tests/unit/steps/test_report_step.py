"""The report step end to end on the reporting fixtures (a 4-submodel MNIST-5k run with K = 3
replicates in version-2 files, and a K = 1 FakeData run in version-1 files)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from clmrepro.reporting.build import MRA_CSV_COLUMNS, _located, merge_scores
from clmrepro.steps.report import main, run_report

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "unit" / "reporting" / "fixtures"


def prepare(root: Path, with_benchmarks: bool = True) -> Path:
    """Copy the fixture run into root and write its job file; returns the job path."""
    shutil.copytree(FIXTURES / "results", root / "results")
    if not with_benchmarks:
        shutil.rmtree(root / "results" / "fixture" / "benchmarks")
    shutil.copy(REPO / "specs" / "paper_tables.yaml", root / "paper_tables.yaml")
    shutil.copy(FIXTURES / "spec.yaml", root / "spec.yaml")
    runs = root / "results" / "fixture"
    rel = lambda paths: sorted(str(p.relative_to(root)) for p in paths)  # noqa: E731
    job = {"id": "report", "stage": "report", "spec": "fixture", "experiment": "", "seed": 7,
           "threads": 1,
           "device": "cpu", "gpu": False,
           "inputs": {"scores": rel(p for p in runs.rglob("*.json")
                                    if p.parent.name == "scores"),
                      "records": rel(runs.rglob("training.json")),
                      "analyses": rel(runs.rglob("analysis.json")),
                      "paper_tables": "paper_tables.yaml", "spec": "spec.yaml"},
           "outputs": {"metrics": "reports/fixture/metrics.json",
                       "mra_csv": "reports/fixture/mra.csv",
                       "report_md": "reports/fixture/report.md",
                       "report_html": "reports/fixture/report.html",
                       "figures": "reports/fixture/figures"},
           "params": {"spec_path": "spec.yaml", "spec_name": "fixture",
                      "description": "fixture run", "spec_sha256": "unused", "seed": 7,
                      "device": "cpu", "departures": ["population of 4 instead of 10"],
                      "precision_notes": [], "attacks": [], "attack_params": {}, "sweeps": []}}
    path = root / "job.json"
    path.write_text(json.dumps(job, indent=2, sort_keys=True) + "\n")
    return path


def run_main_in(root: Path, argv: list[str]) -> int:
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return main(argv)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    roots = []
    for k, benchmarks in enumerate((True, False)):
        root = tmp_path_factory.mktemp(f"run{k}")
        prepare(root, with_benchmarks=benchmarks)
        assert run_main_in(root, ["job.json"]) == 0
        roots.append(root)
    return roots


def test_metrics_are_byte_identical_across_runs_and_machines(two_runs):
    first, second = (r / "reports" / "fixture" / "metrics.json" for r in two_runs)
    assert first.read_bytes() == second.read_bytes()
    assert (two_runs[0] / "reports" / "fixture" / "mra.csv").read_bytes() == \
        (two_runs[1] / "reports" / "fixture" / "mra.csv").read_bytes()
    text = first.read_text()
    assert "wall" not in text and str(two_runs[0]) not in text and "seconds" not in text
    # the benchmark files only change the rendered report
    assert "41.2 s" in (two_runs[0] / "reports/fixture/report.md").read_text()
    assert "not recorded" in (two_runs[1] / "reports/fixture/report.md").read_text()


def test_paper_values_only_for_the_papers_protocol_and_cells(two_runs):
    metrics = json.loads((two_runs[0] / "reports/fixture/metrics.json").read_text())
    assert metrics["schema_version"] == 2
    records = metrics["records"]
    scores = sum(len(json.loads(p.read_text())["records"])
                 for p in (two_runs[0] / "results").rglob("scores/*.json"))
    assert len(records) == scores == 3 * 21 + 8   # K = 3 MNIST-5k + the K = 1 FakeData run

    def find(**key):
        return [r for r in records if all(r[k] == v for k, v in key.items())]

    pgd = find(experiment="mnist", population="clm", attack="pgd", threat_model="paper")
    assert [r["replicate"] for r in pgd] == [0, 1, 2]
    assert {r["paper"] for r in pgd} == {0.5429}          # mnist-5k vs the paper's MNIST
    assert find(population="ulm", attack="benign", experiment="mnist")[0]["paper"] == 0.9904
    assert find(population="clm", attack="pgd", threat_model="transfer")[0]["paper"] is None
    assert find(population="clm", attack="pgd", threat_model="adaptive")[0]["paper"] is None
    assert find(population="ulm", attack="fgsm", eps=0.1)[0]["paper"] is None
    # version-1 files (no replicate) are replicate 0 of their cell
    assert {r["replicate"] for r in find(experiment="fake")} == {0}
    keys = [(r["experiment"], r["dataset"], r["population"], r["regime"], r["attack"],
             r["eps"], r["threat_model"], r["replicate"]) for r in records]
    assert keys == sorted(keys)
    verdicts = {c["id"]: c["verdict"] for c in metrics["claims"]}
    assert verdicts["mnist-clm-beats-ulm"] == "holds"
    assert verdicts["mnist-clm-benign-cost"] == "inconclusive"
    assert verdicts["cifar10-clm-beats-ulm"] == "not run"


def test_cells_and_claims_carry_their_intervals(two_runs):
    metrics = json.loads((two_runs[0] / "reports/fixture/metrics.json").read_text())
    cells = {(c["experiment"], c["population"], c["attack"], c["eps"], c["threat_model"]): c
             for c in metrics["cells"]}
    pgd = cells[("mnist", "clm", "pgd", 0.3, "paper")]
    mras = sorted(r["mra"] for r in metrics["records"] if r["experiment"] == "mnist"
                  and r["population"] == "clm" and r["attack"] == "pgd"
                  and r["threat_model"] == "paper")
    assert (pgd["k"], pgd["method"], pgd["paper"]) == (3, "t over replicates", 0.5429)
    assert pgd["mean"] == round(sum(mras) / 3, 6) and pgd["low"] < pgd["mean"] < pgd["high"]
    assert pgd["consistent"] is False
    fake = cells[("fake", "clm", "pgd", 0.3, "transfer")]
    assert (fake["k"], fake["n"], fake["method"]) == (1, 50, "Wilson score over test images")
    (claim,) = [c for c in metrics["claims"] if c["id"] == "mnist-clm-benign-cost"]
    (row,) = claim["evidence"]
    assert (row["outcome"], row["k"], row["left"], row["right"]) == (
        "inconclusive", 3, "ULM", "CLM")
    assert row["low"] < 0.01 < row["high"]


def test_mra_csv_mirrors_the_records(two_runs):
    metrics = json.loads((two_runs[0] / "reports/fixture/metrics.json").read_text())
    with open(two_runs[0] / "reports/fixture/mra.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == MRA_CSV_COLUMNS
    assert [float(r["mra"]) for r in rows] == [r["mra"] for r in metrics["records"]]
    assert [int(r["replicate"]) for r in rows] == [r["replicate"] for r in metrics["records"]]
    assert [r["paper"] or None for r in rows] == [
        None if r["paper"] is None else repr(r["paper"]) for r in metrics["records"]]


def test_outputs_and_index_exist(two_runs):
    reports = two_runs[0] / "reports"
    for name in ("report.md", "report.html", "metrics.json", "mra.csv"):
        assert (reports / "fixture" / name).stat().st_size > 0
    assert list((reports / "fixture" / "figures").glob("*.png"))
    assert "fixture/report.html" in (reports / "index.html").read_text()
    summary = json.loads((reports / "fixture" / "metrics.json").read_text())["summary"]
    # the saliency claim ran on MNIST/LeNet5, not the paper's CIFAR-10/ResNet18: not counted
    # 12 claims in the paper's setting: the paper's 8 and the 4 one-model claims (issue 27)
    assert (summary["cells_compared"], summary["claims_total"]) == (18, 12)
    assert summary["claims_off_setting"] == 1
    assert summary["cells_consistent"] + summary["cells_inconsistent"] == 18
    assert summary["cells_not_run"] == 68 - 18
    assert (summary["claims_hold"], summary["claims_fail"], summary["claims_inconclusive"],
            summary["claims_run"]) == (1, 0, 1, 2)             # saliency (holds) not counted
    assert f"| {summary['cells_consistent']} of 18 |" in (reports / "index.md").read_text()


def test_main_usage_error():
    assert main([]) == 2


def test_run_report_rejects_a_missing_scores_file(tmp_path):
    job = json.loads(prepare(tmp_path).read_text())
    job["inputs"]["scores"].append("results/fixture/mnist/clm/scores/nothing.json")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(FileNotFoundError):
            run_report(job)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "reports" / "fixture" / "metrics.json").exists()


def write_json(path: Path, obj: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return str(path)


def test_located_reads_both_layouts(tmp_path):
    base = tmp_path / "results" / "spec" / "mnist"
    paths = [write_json(base / "clm" / "r2" / "training.json", {"regime": "clm"}),
             write_json(base / "ulm" / "training.json", {"regime": "ulm"}),
             # a population named like a replicate folder, known from the scores records
             write_json(base / "r1" / "training.json", {"regime": "ulm"}),
             write_json(base / "x" / "r0" / "analysis.json", {"replicate": 4})]
    known = {("mnist", "clm"), ("mnist", "ulm"), ("mnist", "r1"), ("mnist", "x")}
    placed = [(i["experiment"], i["population"], i["replicate"]) for i in _located(paths, known)]
    assert placed == [("mnist", "clm", 2), ("mnist", "ulm", 0), ("mnist", "r1", 0),
                      ("mnist", "x", 4)]   # a replicate the record states wins


def test_merge_scores_refuses_what_it_cannot_read(tmp_path):
    record = {"experiment": "mnist", "dataset": "mnist-5k", "population": "ulm",
              "regime": "ulm", "attack": "benign", "eps": 0.0, "threat_model": "paper",
              "mra": 0.9, "per_submodel": [0.9], "n_samples": 100}
    good = write_json(tmp_path / "v1.json", {"schema_version": 1, "records": [record]})
    (merged,) = merge_scores([good], [])
    assert merged["replicate"] == 0 and merged["paper"] is None
    future = write_json(tmp_path / "v9.json", {"schema_version": 9, "records": [record]})
    with pytest.raises(ValueError, match="v9.json: schema_version 9"):
        merge_scores([future], [])
    bad = write_json(tmp_path / "bad.json", {"schema_version": 2,
                                             "records": [{**record, "n_samples": None}]})
    with pytest.raises(ValueError, match="bad.json: .* n_samples None"):
        merge_scores([bad], [])
