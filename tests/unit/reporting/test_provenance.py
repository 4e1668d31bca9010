"""The report names each prepared dataset's manifest by sha256 (issue 17); metrics.json does not
change with it."""

from __future__ import annotations

import hashlib
import json

from clmrepro.reporting.provenance import NOT_RECORDED, collect, dataset_source


def test_dataset_source_reads_the_manifest(tmp_path):
    manifest = tmp_path / "mnist-5k.manifest.json"
    manifest.write_text(json.dumps({"dataset": "mnist-5k", "data": {"sha256": "ab" * 32}}))
    found = dataset_source(manifest)
    assert found.dataset == "mnist-5k" and found.data_sha256 == "ab" * 32
    assert found.manifest_sha256 == hashlib.sha256(manifest.read_bytes()).hexdigest()
    missing = dataset_source(tmp_path / "gone.json")
    assert (missing.dataset, missing.manifest_sha256, missing.data_sha256) == (NOT_RECORDED,) * 3
    prov = collect({}, None, tmp_path / "none.lock", tmp_path, manifests=[str(manifest)])
    assert [d.dataset for d in prov.datasets] == ["mnist-5k"]


def test_report_names_each_manifest_and_metrics_stay_the_same(tmp_path, rendered, report_tools):
    root = tmp_path / "run"
    job = report_tools["make_job"](root)
    manifest = root / "data/prepared/mnist-5k.manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"dataset": "mnist-5k", "data": {"sha256": "cd" * 32}}))
    job["inputs"]["manifests"] = ["data/prepared/mnist-5k.manifest.json"]
    report_tools["run_in"](root, job)
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    md = (root / job["outputs"]["report_md"]).read_text()
    assert (f"- dataset mnist-5k: manifest `data/prepared/mnist-5k.manifest.json` sha256 "
            f"`{digest}` (prepared data sha256 `{'cd' * 32}`)") in md
    assert digest in (root / job["outputs"]["report_html"]).read_text()
    assert "- dataset " not in rendered["md"]   # the fixture report reads no manifest
    assert (root / job["outputs"]["metrics"]).read_bytes() == rendered["out"]["metrics"].read_bytes()
