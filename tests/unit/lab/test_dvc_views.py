"""reports/<spec>/dvc_metrics.json and mra_by_attack.csv: DVC's views of the records."""

from __future__ import annotations

import csv
import io
import json

from clmrepro.reporting.dvc_metrics import cell_key, flat_metrics, plot_csv, write_dvc_views
from clmrepro.reporting.sweeps import sweep_figures, sweep_series


def record(population="clm", attack="pgd", eps=0.3, threat="paper", mra=0.5, replicate=None,
           experiment="mnist"):
    r = {"experiment": experiment, "population": population, "attack": attack, "eps": eps,
         "threat_model": threat, "mra": mra}
    if replicate is not None:
        r["replicate"] = replicate
    return r


def test_flat_keys_and_mean_over_replicates():
    records = [record(mra=0.5, replicate=0), record(mra=0.6, replicate=1),
               record(mra=0.7, replicate=2), record(attack="benign", eps=0.0, mra=0.98),
               record(population="ulm", threat="adaptive", mra=0.11249999999999999)]
    metrics = flat_metrics(records, {"claims_hold": 3, "tolerance_points": 5.0, "note": "x"})
    assert metrics == {"mnist/clm/pgd/0.3/paper": 0.6, "mnist/clm/benign/0/paper": 0.98,
                       "mnist/ulm/pgd/0.3/adaptive": 0.1125, "summary/claims_hold": 3,
                       "summary/tolerance_points": 5.0}
    assert cell_key(record(eps=8 / 255)) == "mnist/clm/pgd/0.0313725/paper"


def test_records_without_replicate_are_replicate_zero():
    # schema-1 record (no `replicate`) and a schema-2 record of replicate 0 are the same run
    records = [record(mra=0.4), record(mra=0.4, replicate=0), record(mra=0.8, replicate=1)]
    assert flat_metrics(records) == {"mnist/clm/pgd/0.3/paper": 0.6}


def test_plot_csv_has_one_row_per_cell(tmp_path):
    records = [record(mra=0.5, replicate=0), record(mra=0.7, replicate=1), record(attack="fgsm")]
    rows = list(csv.DictReader(io.StringIO(plot_csv(records))))
    assert [(r["cell"], r["replicates"], float(r["mra"])) for r in rows] == [
        ("mnist/clm/fgsm/0.3/paper", "1", 0.5), ("mnist/clm/pgd/0.3/paper", "2", 0.6)]
    outputs = {"dvc_metrics": str(tmp_path / "m.json"), "mra_by_attack": str(tmp_path / "p.csv")}
    assert write_dvc_views(records, None, outputs) == list(outputs.values())
    first = (tmp_path / "m.json").read_bytes()
    write_dvc_views(list(reversed(records)), None, outputs)
    assert (tmp_path / "m.json").read_bytes() == first  # order of records does not matter
    assert json.loads(first)["mnist/clm/pgd/0.3/paper"] == 0.6
    assert write_dvc_views(records, None, {}) == []  # a report job without DVC views


SWEEP = {"experiment": "mnist", "entry": "population", "id": "clm", "knobs": ["regime.alpha"],
         "members": [{"id": f"clm-alpha{a:g}", "values": {"regime.alpha": a}}
                     for a in (0.01, 0.1, 1.0)]}


def test_sweep_series_follow_the_swept_knob():
    records = [record(population=f"clm-alpha{a:g}", mra=m, replicate=r)
               for a, m in [(1.0, 0.3), (0.01, 0.1), (0.1, 0.2)] for r in (0, 1)]
    records += [record(population="clm-alpha0.1", attack="benign", eps=0.0, mra=0.99),
                record(population="ulm", mra=0.9)]  # not a member: not plotted
    series = sweep_series(records, SWEEP)
    assert series == {"benign": [(0.1, 0.99)], "pgd ε=0.3 paper": [(0.01, 0.1), (0.1, 0.2), (1.0, 0.3)]}


def test_sweep_figure_for_a_population_and_an_attack_sweep(tmp_path):
    attack_sweep = {"experiment": "mnist", "entry": "attack", "id": "pgd", "knobs": ["steps"],
                    "members": [{"id": f"pgd-steps{s}", "values": {"steps": s}} for s in (5, 40)]}
    records = [record(population=f"clm-alpha{a:g}", mra=a / 2) for a in (0.01, 0.1, 1.0)]
    records += [record(population="ulm", attack=f"pgd-steps{s}", mra=1 / s) for s in (5, 40)]
    figures = sweep_figures(records, [SWEEP, attack_sweep], tmp_path)
    assert [f.name for f in figures] == ["sweep-mnist-clm.png", "sweep-mnist-pgd.png"]
    assert all((tmp_path / f.name).stat().st_size > 1000 for f in figures)
    assert "clm-alpha0.01" in figures[0].caption
    assert sweep_figures(records, [], tmp_path) == []
