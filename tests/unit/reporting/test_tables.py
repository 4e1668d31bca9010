import statistics

import pytest

from clmrepro.reporting.tables import (NOT_RUN, Cell, eps_text, params_text, pct, points,
                                       summarise, paper_table_views)
from clmrepro.reporting.paper import PaperTable


def rec(mra, subs, regime="clm", attack="fgsm", eps=0.3, dataset="mnist-5k", threat="paper"):
    return {"experiment": "mnist", "dataset": dataset, "population": regime, "regime": regime,
            "attack": attack, "eps": eps, "threat_model": threat, "mra": mra,
            "per_submodel": subs, "attack_params": {"eps": eps, "steps": 40}}


def test_formatting_is_the_papers_two_decimals():
    assert pct(0.2768) == "27.68%"
    assert pct(None) == NOT_RUN
    assert points(-0.0256) == "-2.56" and points(0.1) == "+10.00"
    assert eps_text(8 / 255) == "8/255 (0.0314)" and eps_text(0.3) == "0.3"
    assert params_text({"steps": 40, "eps": 0.3, "random_start": True}) == \
        "eps=0.3, random_start=true, steps=40"


def test_cell_spread_over_submodels_and_runs():
    one = rec(0.5, [0.4, 0.5, 0.6, 0.5])
    cell = Cell([one], paper=0.45)
    assert cell.submodel_spread == pytest.approx(statistics.stdev([0.4, 0.5, 0.6, 0.5]))
    assert cell.delta == pytest.approx(0.05)
    assert cell.text() == "50.00% ± 8.16"
    two = Cell([one, rec(0.6, [0.6, 0.6, 0.6, 0.6])])
    assert two.mean == pytest.approx(0.55)
    assert two.text() == "55.00% ± 4.08; runs ± 7.07 (n=2)"
    assert Cell([], paper=0.3).text() == NOT_RUN and Cell([], 0.3).delta is None


def test_views_place_records_and_summary_counts():
    table = PaperTable(2, "t", 0.3, "0.3", {"mnist": {"fgsm": {"ulm": 0.30, "clm": 0.50},
                                                     "pgd": {"ulm": 0.35, "clm": 0.55}}})
    records = [rec(0.52, [0.52] * 4, "clm"), rec(0.20, [0.2] * 4, "ulm"),
               rec(0.99, [0.99] * 4, "clm", threat="transfer"),     # not the paper's protocol
               rec(0.10, [0.1] * 4, "clm", eps=0.1)]                # not this table's eps
    (view,) = paper_table_views([table], records)
    fgsm = dict((a, cells) for a, cells, _ in view.rows)["fgsm"]
    assert fgsm["clm"].mean == pytest.approx(0.52) and len(fgsm["clm"].records) == 1
    summary = summarise([view])
    assert (summary.compared, summary.within, summary.not_run) == (2, 1, 2)
    assert summary.worst[0][0] == "Table 2 FGSM ULM"
    assert summary.worst[0][1] == pytest.approx(-0.10)
