"""Every number of a report of record recomputes from its published files (issue 27):
benchmarks/recompute_results.py recomputes each cell and claim row of metrics.json from
per_image.csv.gz with code of its own, and renders the README's tables from them.  Runs on every
results folder that publishes per_image.csv.gz (reports of record regenerated since issue 26);
tests/unit/reporting/test_recompute.py runs the script on the fixture run's report."""

from __future__ import annotations

import json
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
