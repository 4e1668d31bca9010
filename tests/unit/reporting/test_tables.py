import pytest

from clmrepro.reporting.paper import PaperTable
from clmrepro.reporting.stats import Interval
from clmrepro.reporting.tables import (CONSISTENT, NOT_IN_PAPER, NOT_RUN, Cell, bounds,
                                       difference_text, eps_text, other_rows, paper_table_views,
                                       params_text, pct, points, summarise, value_text)


def rec(mra, subs, regime="clm", attack="fgsm", eps=0.3, dataset="mnist-5k", threat="paper",
        r=0, n=200):
    return {"experiment": "mnist", "dataset": dataset, "population": regime, "regime": regime,
            "attack": attack, "eps": eps, "threat_model": threat, "mra": mra,
            "per_submodel": subs, "attack_params": {"eps": eps, "steps": 40}, "replicate": r,
            "n_samples": n}


def test_formatting_is_the_papers_two_decimals():
    assert pct(0.2768) == "27.68%"
    assert pct(None) == NOT_RUN
    assert points(-0.0256) == "-2.56" and points(0.1) == "+10.00"
    assert eps_text(8 / 255) == "8/255 (0.0314)" and eps_text(0.3) == "0.3"
    assert params_text({"steps": 40, "eps": 0.3, "random_start": True}) == \
        "eps=0.3, random_start=true, steps=40"


def test_interval_formatting():
    interval = Interval(0.03, -0.012, 0.074, "t over replicates", 3)
    assert bounds(interval) == "[-1.20, 7.40]"
    assert difference_text(interval) == "+3.00 [-1.20, +7.40] points"
    assert difference_text(interval, "number") == "+0.030 [-0.012, +0.074]"
    assert value_text(0.1834, "number") == "0.183" and value_text(0.1834) == "18.34%"
    assert bounds(None) == difference_text(None) == NOT_RUN


def test_cell_is_a_mean_with_its_interval():
    # K = 1: Wilson over 100 images, p = 0.9 -> [82.56, 94.48]
    one = Cell([rec(0.9, [0.9] * 4, n=100)], paper=0.99)
    assert one.text() == "90.00% [82.56, 94.48]"
    assert one.text_with_size() == "90.00% [82.56, 94.48] (K=1, N=100)"
    # 0.99 is 4.52 points above 94.48: inside the 5-point tolerance
    assert one.consistent is True and one.vs_paper() == CONSISTENT
    # K = 3: t interval 50.00 ± 24.84; widened by 5 points: [20.159, 79.841]
    runs = [rec(0.4, [0.4] * 4, r=0), rec(0.5, [0.5] * 4, r=1), rec(0.6, [0.6] * 4, r=2)]
    assert Cell(runs).text() == "50.00% [25.16, 74.84]" and Cell(runs).k == 3
    assert Cell(runs, paper=0.7980).vs_paper() == CONSISTENT
    assert Cell(runs, paper=0.7990).vs_paper() == "-29.90"        # the gap mean − paper
    assert Cell(runs, paper=0.2020).consistent is True
    assert Cell(runs, paper=0.2010).consistent is False
    assert Cell([], paper=0.3).text() == NOT_RUN and Cell([], 0.3).vs_paper() == NOT_RUN
    assert Cell([rec(0.5, [0.5] * 4)]).vs_paper() == NOT_IN_PAPER


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
    # CLM 52 [45.1, 58.8] vs 50: consistent; ULM 20 [14.9, 26.1] vs 30 (+5 = 31.1): consistent
    assert (summary.compared, summary.consistent, summary.inconsistent, summary.not_run) == (
        2, 2, 0, 2)
    records[1]["mra"] = 0.15   # ULM 15 [10.7, 20.6]: 30 is 4.4 points beyond 25.6
    summary = summarise(paper_table_views([table], records))
    assert (summary.consistent, summary.inconsistent) == (1, 1)
    assert summary.worst == [("Table 2 FGSM ULM", pytest.approx(-0.15))]


def test_other_rows_pool_replicates():
    records = [rec(0.7, [0.7] * 4, eps=0.1, r=r) for r in range(3)]
    (row,) = other_rows([], records)
    assert (row.eps, row.cell.k, row.cell.samples, row.crafting) == (0.1, 3, 200, "")
