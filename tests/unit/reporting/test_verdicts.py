"""Issue 27's verdicts on constructed records: the paper's effect size, equivalence by two
one-sided tests, claims measured outside the paper's setting, and agreement as a pattern."""

from pathlib import Path

import pytest

from clmrepro.reporting.claims import (CLAIMS, FAILS, HOLDS, INCONCLUSIVE, LARGER, REPRODUCED,
                                       SMALLER, counted, effect_size, equivalence_power,
                                       evaluate_claims, outcome)
from clmrepro.reporting.agreement import gap_patterns, pattern_lines, reversed_orderings
from clmrepro.reporting.paper import ATTACKS, load_paper_tables
from clmrepro.reporting.stats import T_REPLICATES, Interval
from clmrepro.reporting.tables import paper_table_views

TABLES = load_paper_tables(Path(__file__).resolve().parents[3] / "specs" / "paper_tables.yaml")


def replicates(regime, attack, eps, values, dataset="mnist-5k", architecture="lenet5"):
    return [{"experiment": "mnist", "dataset": dataset, "architecture": architecture,
             "population": regime, "regime": regime, "attack": attack, "eps": eps,
             "threat_model": "paper", "mra": v, "per_submodel": [v] * 4, "n_samples": 1000,
             "replicate": r} for r, v in enumerate(values)]


def claim(claim_id):
    return [c for c in CLAIMS if c.id == claim_id]


def interval(low, high):
    return Interval((low + high) / 2, low, high, T_REPLICATES, 3)


@pytest.mark.parametrize("low, high, effect, expected", [
    (0.006, 0.171, 0.2368, SMALLER),      # the paper's +23.7 above our upper bound
    (0.006, 0.171, 0.10, REPRODUCED),
    (0.006, 0.171, 0.001, LARGER),        # ours lies beyond the paper's, away from 0
    (-0.05, 0.02, -0.068, SMALLER),       # a negative effect farther from 0 than ours
    (-0.20, -0.10, -0.068, LARGER),
    (-0.05, -0.01, 0.0, LARGER),          # the paper saw none, we exclude none
])
def test_the_size_of_an_effect_against_the_papers(low, high, effect, expected):
    assert effect_size(interval(low, high), effect) == expected
    assert effect_size(None, effect) is None
    assert effect_size(interval(low, high), None) is None


def test_clm_beats_ulm_excludes_the_papers_effect_size_in_words():
    # CLM − ULM = +5 points on every replicate pair; the paper's FGSM effect is +23.68
    records = (replicates("ulm", "fgsm", 0.3, [0.40, 0.41, 0.42])
               + replicates("clm", "fgsm", 0.3, [0.45, 0.47, 0.46]))
    (result,) = evaluate_claims(records, [], claim("mnist-clm-beats-ulm"), TABLES)
    fgsm = result.evidence[0]
    assert fgsm.outcome == HOLDS                       # the direction holds ...
    assert fgsm.paper_effect == pytest.approx(0.2368)
    assert fgsm.effect == SMALLER                        # ... the size does not
    assert result.verdict != HOLDS                     # four attacks were not run
    assert "+23.7" in result.effect_text and "excluded" in result.effect_text
    assert f"{fgsm.interval.high * 100:+.1f}" in result.effect_text


def test_an_effect_of_the_papers_size_is_reproduced():
    # CLM − ULM = +22, +24, +25 points: the paper's +23.68 lies inside
    records = (replicates("ulm", "fgsm", 0.3, [0.30, 0.28, 0.27])
               + replicates("clm", "fgsm", 0.3, [0.52, 0.52, 0.52]))
    (result,) = evaluate_claims(records, [], claim("mnist-clm-beats-ulm"), TABLES)
    assert result.evidence[0].effect == REPRODUCED
    assert "inside our interval" in result.effect_text


def test_without_the_papers_tables_rows_have_no_size():
    records = (replicates("ulm", "fgsm", 0.3, [0.40, 0.41, 0.42])
               + replicates("clm", "fgsm", 0.3, [0.45, 0.47, 0.46]))
    (result,) = evaluate_claims(records, [], claim("mnist-clm-beats-ulm"))
    assert result.evidence[0].effect is None and result.effect_text == ""


def _similar(differences):
    """ULM-Adv − CLM-Adv = ``differences`` over three replicates (PGD, MNIST, ε = 0.3)."""
    clm = [0.40, 0.42, 0.41]
    records = (replicates("ulm-adv", "pgd", 0.3, [c + d for c, d in zip(clm, differences)])
               + replicates("clm-adv", "pgd", 0.3, clm))
    (result,) = evaluate_claims(records, [], claim("mnist-adv-similar"), TABLES)
    return next(e for e in result.evidence if e.label == "PGD")


def test_similar_is_an_equivalence_test_on_the_90_percent_interval():
    # mean +0.3 points, 95% interval [−0.45, +1.05] (crosses the ±1 margin: the old rule said
    # inconclusive), 90% interval [−0.21, +0.81] inside it: two one-sided tests hold
    row = _similar([0.000, 0.003, 0.006])
    assert row.interval.high > 0.01
    assert outcome(row.interval, "≈") == INCONCLUSIVE
    assert -0.01 < row.equivalence.low and row.equivalence.high < 0.01
    assert row.outcome == HOLDS
    assert row.confirmable_margin == pytest.approx(0.00806, abs=2e-5)
    assert row.power == pytest.approx(0.94, abs=0.005)          # docs/statistics.md
    assert _similar([0.0, 0.03, 0.06]).power == pytest.approx(0.0, abs=1e-9)


def test_similar_fails_when_the_95_percent_interval_lies_outside_the_margin():
    row = _similar([0.030, 0.031, 0.032])
    assert row.outcome == FAILS


def test_similar_is_inconclusive_when_the_data_cannot_tell():
    row = _similar([-0.02, 0.0, 0.025])
    assert row.outcome == INCONCLUSIVE
    assert row.confirmable_margin > 0.01


def test_equivalence_power_grows_with_precision():
    assert equivalence_power(interval(-0.001, 0.001), 0.01) > 0.99
    assert equivalence_power(interval(-0.2, 0.2), 0.01) == pytest.approx(0.0, abs=1e-9)
    wide, narrow = (equivalence_power(interval(-w, w), 0.01) for w in (0.02, 0.01))
    assert 0.0 <= wide < narrow <= 1.0


def _saliency(dataset, architecture):
    analyses = [{"experiment": "e", "regime": regime, "population": regime, "replicate": 0,
                 "saliency_cosine": {"0-1": values, "0-2": values}}
                for regime, values in (("clm", [0.1, 0.2, 0.1]), ("ulm", [0.5, 0.6, 0.55]))]
    records = [{**r, "experiment": "e"} for r in
               replicates("ulm", "fgsm", 0.3, [0.4], dataset=dataset, architecture=architecture)]
    (result,) = evaluate_claims(records, analyses, claim("saliency-more-orthogonal"), TABLES)
    return result


def test_a_claim_measured_off_the_papers_setting_is_labelled_and_not_counted():
    off = _saliency("mnist-5k", "lenet5")       # the paper ran Fig. 6 on CIFAR-10/ResNet18
    assert off.verdict == HOLDS and off.off_setting
    assert counted([off]) == []
    on = _saliency("cifar10", "resnet18")
    assert on.verdict == HOLDS and not on.off_setting
    assert counted([on]) == [on]
    assert on.claim.setting_text == "CIFAR-10 / ResNet18"


# ---- agreement as a pattern --------------------------------------------------------------



def test_a_one_sided_pattern_is_reported_even_when_every_cell_is_consistent():
    # Table 2 (MNIST, ε = 0.3): ULM 5 points above the paper everywhere, CLM 5 below, with a
    # spread that keeps the paper's number in every cell's widened interval
    paper = {t.number: t for t in TABLES}[2].values["mnist"]
    records = []
    for attack in ATTACKS:
        for regime, shift in (("ulm", 0.05), ("clm", -0.05)):
            base = paper[attack][regime] + shift
            records += replicates(regime, attack, 0.3, [base - 0.03, base, base + 0.03])
    views = [v for v in paper_table_views(TABLES, records) if v.table.number == 2]
    (view,) = views
    assert all(cells[r].consistent for _, cells, _ in view.rows for r in ("ulm", "clm"))
    patterns = {p.regime: p for p in gap_patterns(views)}
    assert (patterns["ulm"].above, patterns["ulm"].compared) == (5, 5)
    assert (patterns["clm"].below, patterns["clm"].compared) == (5, 5)
    assert "ulm-adv" not in patterns                      # not run: no pattern
    # CLM − ULM is the paper's gap (17.7 to 23.7 points) less 10: still CLM first
    assert reversed_orderings(views) == []
    (line,) = pattern_lines(views)
    assert line == ("Table 2 (MNIST): ULM above the paper in 5 of 5 cells; "
                    "CLM below the paper in 5 of 5 cells.")


def test_orderings_reverse_where_our_gap_outweighs_the_papers():
    paper = {t.number: t for t in TABLES}[2].values["mnist"]
    records = []
    for attack in ATTACKS:
        # ULM 15 points above the paper, CLM 15 below: CLM − ULM is the paper's gap less 30
        # points, negative for every attack (the paper's largest gap is 23.68)
        records += replicates("ulm", attack, 0.3, [paper[attack]["ulm"] + 0.15] * 3)
        records += replicates("clm", attack, 0.3, [paper[attack]["clm"] - 0.15] * 3)
        # ULM-Adv far below ULM reverses an order the paper prints but never compares
        records += replicates("ulm-adv", attack, 0.3, [0.01] * 3)
    views = [v for v in paper_table_views(TABLES, records) if v.table.number == 2]
    (flip,) = reversed_orderings(views)          # only CLM vs ULM: a pair the paper compares
    assert (flip.first, flip.second) == ("clm", "ulm")
    assert flip.reversed_in == ATTACKS and flip.compared == 5
    (line,) = pattern_lines(views)
    assert line.startswith("Table 2 (MNIST): ULM above the paper in 5 of 5 cells; CLM below")
    assert "cells. The paper ranks CLM above ULM; our means reverse that in 5 of 5 rows" in line


# ---- clean accuracy taken out --------------------------------------------------------------

def per_image(regime, attack, eps, values):
    return {"experiment": "mnist", "dataset": "mnist-5k", "architecture": "lenet5",
            "population": regime, "regime": regime, "attack": attack, "eps": eps,
            "threat_model": "paper", "mra": sum(values) / len(values), "per_image": values,
            "per_submodel": [0.5] * 4, "n_samples": len(values), "replicate": 0}


def test_a_verdict_that_clean_accuracy_explains_flips_when_it_is_taken_out():
    # ULM is right on only the first 5 clean images, CLM on all 10. Under FGSM both give the
    # same answers on those 5; CLM's lead comes from the 5 images ULM never knew.
    same = [0.5, 0.25, 0.5, 0.75, 0.5]
    records = [per_image("ulm", "benign", 0.0, [1.0] * 5 + [0.0] * 5),
               per_image("clm", "benign", 0.0, [1.0] * 10),
               per_image("ulm", "fgsm", 0.3, same + [0.0] * 5),
               per_image("clm", "fgsm", 0.3, same + [0.5] * 5)]
    (result,) = evaluate_claims(records, [], claim("mnist-clm-beats-ulm"), TABLES)
    fgsm = result.evidence[0]
    assert fgsm.outcome == HOLDS                               # +25 points over all images
    assert fgsm.clean_taken_out.outcome == FAILS               # +0 on the clean-correct five
    assert fgsm.clean_taken_out.interval.k == 1 and fgsm.clean_taken_out.interval.n == 5
    assert fgsm.confounded and result.confounded_rows == ["FGSM"]


def test_a_verdict_that_survives_without_clean_accuracy_is_not_confounded():
    records = [per_image("ulm", "benign", 0.0, [1.0] * 10),
               per_image("clm", "benign", 0.0, [1.0] * 10),
               per_image("ulm", "fgsm", 0.3, [0.25, 0.5] * 5),
               per_image("clm", "fgsm", 0.3, [0.5, 1.0] * 5)]
    (result,) = evaluate_claims(records, [], claim("mnist-clm-beats-ulm"), TABLES)
    fgsm = result.evidence[0]
    assert fgsm.outcome == HOLDS and fgsm.clean_taken_out.outcome == HOLDS
    assert not fgsm.confounded and result.confounded_rows == []


def test_without_per_image_values_clean_accuracy_cannot_be_taken_out():
    records = (replicates("ulm", "fgsm", 0.3, [0.40, 0.41, 0.42])
               + replicates("clm", "fgsm", 0.3, [0.45, 0.47, 0.46]))
    (result,) = evaluate_claims(records, [], claim("mnist-clm-beats-ulm"), TABLES)
    assert result.evidence[0].clean_taken_out.outcome == "not run"
    assert not result.evidence[0].confounded


def test_the_first_screen_has_one_row_per_claim_run_and_lists_the_rest():
    from clmrepro.reporting.claims import first_screen
    records = (replicates("ulm", "fgsm", 0.3, [0.40, 0.41, 0.42])
               + replicates("clm", "fgsm", 0.3, [0.45, 0.47, 0.46]))
    analyses = [{"experiment": "mnist", "regime": regime, "population": regime, "replicate": 0,
                 "saliency_cosine": {"0-1": values, "0-2": values}}
                for regime, values in (("clm", [0.1, 0.2, 0.1]), ("ulm", [0.5, 0.6, 0.55]))]
    rows, not_run, off = first_screen(evaluate_claims(records, analyses, tables=TABLES))
    (row,) = rows
    assert row.claim == "CLM beats ULM (MNIST / LeNet5)"
    assert row.paper == "+23.7" and row.ours == "+5.0"
    assert "excluded" in row.effect
    assert "CLM beats ULM (CIFAR-10 / ResNet18)" in not_run
    assert off == ["CLM saliency maps are more orthogonal (CIFAR-10 / ResNet18): measured on "
                   "another setting, holds"]


def test_a_one_member_population_is_reported_as_one_model(tmp_path):
    """A size-1 ULM population's records are "one model", never ULM: otherwise its MRA would
    be averaged into ULM's cells of the paper's tables."""
    import json

    from clmrepro.reporting.build import merge_scores
    from clmrepro.reporting.paper import reported_regime
    assert reported_regime("ulm", 1) == "one-model"
    assert reported_regime("ulm-adv", 1) == "one-model-adv"
    assert reported_regime("ulm", 10) == "ulm" and reported_regime("clm", 1) == "clm"
    rows = [{**r, "n_submodels": n, "population": pop}
            for n, pop, r in ((10, "ulm", replicates("ulm", "fgsm", 0.3, [0.4])[0]),
                              (1, "one-model", replicates("ulm", "fgsm", 0.3, [0.1])[0]))]
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"schema_version": 2, "records": rows}))
    merged = merge_scores([str(path)], TABLES)
    assert {r["population"]: r["regime"] for r in merged} == {"ulm": "ulm",
                                                             "one-model": "one-model"}
    paper = {r["population"]: r["paper"] for r in merged}
    assert paper["ulm"] is not None and paper["one-model"] is None


@pytest.mark.parametrize("population, one", [("ulm", "one-model"), ("ulm-adv", "one-model-adv")])
def test_a_population_beats_one_model_trained_the_same_way(population, one):
    """The thesis claim (issue 27): the population's MRA above one model's, per attack; with
    no paper row for one model the claim has no paper effect to size."""
    wins = sum((replicates(population, a, 0.3, [0.30, 0.32, 0.31])
                + replicates(one, a, 0.3, [0.10, 0.13, 0.11]) for a in ATTACKS), [])
    (result,) = evaluate_claims(wins, [], claim(f"mnist-{population}-beats-{one}"), TABLES)
    assert result.verdict == HOLDS
    assert all(e.paper_effect is None for e in result.evidence)
    loses = sum((replicates(population, a, 0.3, [0.10, 0.12, 0.11])
                 + replicates(one, a, 0.3, [0.30, 0.33, 0.31]) for a in ATTACKS), [])
    (result,) = evaluate_claims(loses, [], claim(f"mnist-{population}-beats-{one}"), TABLES)
    assert result.verdict == FAILS
