"""The inference-rules section (reporting.inference): split and tables."""

import pytest

from clmrepro.reporting.inference import inference_tables, split


def record(pop, attack, mra, *, rule=None, threat="paper", r=0):
    out = {"experiment": "mnist", "dataset": "mnist-5k", "population": pop, "regime": pop,
           "attack": attack, "eps": 0.0 if attack == "benign" else 0.3, "threat_model": threat,
           "mra": mra, "per_submodel": [mra], "n_samples": 100, "replicate": r, "paper": 0.5}
    if rule:
        out["inference"] = rule
    return out


def test_split_keeps_the_deterministic_rules_out_of_the_papers_records():
    records = [record("ulm", "pgd", 0.2), record("ulm", "pgd", 0.3, rule="average"),
               record("ulm", "pgd", 0.1, rule="random")]
    random, rules = split(records)
    assert [r["mra"] for r in random] == [0.2, 0.1]
    assert [(r["inference"], r["paper"]) for r in rules] == [("average", None)]


def test_one_row_per_population_and_attack_the_rules_ran_one_column_per_rule():
    random = [record("clm", "pgd", v, r=r) for r, v in enumerate([0.30, 0.32])] + \
        [record("ulm", "pgd", 0.1), record("ulm", "strongest", 0.05),
         record("ulm", "pgd", 0.02, threat="adaptive")]
    rules = [record("clm", "pgd", v, rule="vote", r=r) for r, v in enumerate([0.40, 0.44])] + \
        [record("ulm", "pgd", 0.2, rule="vote")]
    tables = inference_tables(random, rules)
    assert [(t.threat_model, t.rules) for t in tables] == [("paper", ["random", "vote"])]
    rows = {(pop, attack): cells for pop, attack, _, cells in tables[0].rows}
    assert list(rows) == [("ulm", "pgd"), ("clm", "pgd")]  # no strongest row: no rule ran it
    assert rows[("clm", "pgd")]["random"].mean == pytest.approx(0.31)
    assert rows[("clm", "pgd")]["vote"].mean == pytest.approx(0.42)
    assert tables[0].header() == ["population", "attack", "random", "vote"]
    assert tables[0].markdown_rows()[0][:2] == ["ulm", "PGD ε 0.3"]
    assert inference_tables(random, []) == []
