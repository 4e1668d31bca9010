"""Every number of a report of record recomputes from its published files (issue 27):
benchmarks/recompute_results.py recomputes each cell and claim row of metrics.json from
per_image.csv.gz with code of its own, and renders the README's tables from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import importlib.util
import sys

import pytest

ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location("recompute_results",
                                               ROOT / "benchmarks" / "recompute_results.py")
recompute_results = importlib.util.module_from_spec(_SPEC)
sys.modules["recompute_results"] = recompute_results
_SPEC.loader.exec_module(recompute_results)
PUBLISHED = sorted(p.parent for p in (ROOT / "docs" / "results").glob("*/per_image.csv.gz"))


def test_a_report_of_record_publishes_its_per_image_data():
    assert any(p.name == "mnist5k" for p in PUBLISHED)


@pytest.mark.parametrize("folder", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_metrics_and_readme_recompute_from_the_per_image_data(folder, capsys):
    assert recompute_results.main([str(folder)]) == 0, capsys.readouterr().out
    metrics = json.loads((folder / "metrics.json").read_text())
    rows = recompute_results.read_rows(folder)
    cells, _ = recompute_results.check_cells(metrics, rows)
    assert cells >= len([c for c in metrics["cells"] if c["attack"] != "benign"]) // 2
    readme = (folder / "README.md").read_text()
    lines = recompute_results.readme_lines(metrics, rows)
    assert lines
    missing = [line for line in lines if line not in readme]
    assert missing == []


@pytest.mark.parametrize("folder", PUBLISHED[:1], ids=[p.name for p in PUBLISHED[:1]])
def test_a_changed_number_is_caught(folder, tmp_path, capsys):
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    changed = next(c for c in metrics["cells"] if c["attack"] == "pgd" and c["k"] >= 2)
    changed["mean"] += 0.001
    (copy / "metrics.json").write_text(json.dumps(metrics))
    assert recompute_results.main([str(copy)]) == 1
    assert f"cell {changed['population']}/pgd" in capsys.readouterr().out
