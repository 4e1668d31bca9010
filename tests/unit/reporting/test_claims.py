from pathlib import Path

import pytest

from clmrepro.reporting.claims import CLAIMS, FAILS, HOLDS, NOT_RUN, evaluate_claims
from clmrepro.reporting.paper import load_paper_tables

TABLES = Path(__file__).resolve().parents[3] / "specs" / "paper_tables.yaml"


def record(dataset, regime, attack, eps, mra, threat="paper"):
    return {"experiment": dataset, "dataset": dataset, "population": regime, "regime": regime,
            "attack": attack, "eps": eps, "threat_model": threat, "mra": mra,
            "per_submodel": [mra] * 4}


@pytest.fixture(scope="module")
def paper_records():
    """The paper's own tables as if they were a perfect reproduction."""
    out = []
    for table in load_paper_tables(TABLES):
        for dataset, rows in table.values.items():
            for attack, row in rows.items():
                for regime, value in row.items():
                    out.append(record(dataset, regime, attack, table.eps, value))
    return out


def saliency(regime, centre):
    return {"experiment": "cifar10", "population": regime, "regime": regime,
            "saliency_cosine": {"0-1": [centre, centre + 0.1], "0-2": [centre - 0.1, centre]}}


def by_id(results):
    return {r.claim.id: r for r in results}


def test_the_paper_satisfies_its_own_claims(paper_records):
    analyses = [saliency("ulm", 0.4), saliency("clm", 0.2)]
    results = by_id(evaluate_claims(paper_records, analyses))
    assert {k: r.verdict for k, r in results.items()} == {c.id: HOLDS for c in CLAIMS}
    fgsm = results["mnist-clm-beats-ulm"].evidence[0]
    assert (fgsm.label, fgsm.left, fgsm.right) == ("FGSM", 0.5136, 0.2768)


def test_one_reversed_cell_makes_a_claim_fail(paper_records):
    changed = [dict(r) for r in paper_records]
    for r in changed:
        if (r["dataset"], r["regime"], r["attack"], r["eps"]) == ("mnist", "clm", "pgd", 0.3):
            r["mra"] = 0.30  # below ULM's 35.94 %
    results = by_id(evaluate_claims(changed, []))
    assert results["mnist-clm-beats-ulm"].verdict == FAILS
    assert [e.ok for e in results["mnist-clm-beats-ulm"].evidence] == [True, False, True, True,
                                                                        True]
    assert results["saliency-more-orthogonal"].verdict == NOT_RUN


def test_a_missing_cell_is_not_run_never_filled(paper_records):
    missing = [r for r in paper_records if not (r["dataset"] == "mnist" and r["eps"] == 0.4
                                                and r["attack"] == "autoattack")]
    result = by_id(evaluate_claims(missing, []))["mnist-eps0.4-split"]
    assert result.verdict == NOT_RUN
    row = next(e for e in result.evidence if e.label == "AutoAttack")
    assert row.left is None and row.right is None and row.ok is None


def test_only_the_papers_protocol_counts(paper_records):
    # a transfer record with a huge CLM number must not rescue a missing paper-protocol cell
    kept = [r for r in paper_records if not (r["regime"] == "clm" and r["attack"] == "fgsm")]
    kept.append(record("mnist", "clm", "fgsm", 0.3, 0.99, threat="transfer"))
    assert by_id(evaluate_claims(kept, []))["mnist-clm-beats-ulm"].verdict == NOT_RUN


@pytest.mark.parametrize("gap, verdict", [(0.0100, HOLDS), (0.0102, FAILS)])
def test_similar_means_within_one_point(paper_records, gap, verdict):
    changed = []
    for r in paper_records:
        r = dict(r)
        if r["dataset"] == "mnist" and r["eps"] == 0.3 and r["regime"] == "clm-adv":
            ulm = next(x["mra"] for x in paper_records if x["dataset"] == "mnist"
                       and x["eps"] == 0.3 and x["regime"] == "ulm-adv"
                       and x["attack"] == r["attack"])
            r["mra"] = ulm - gap
        changed.append(r)
    assert by_id(evaluate_claims(changed, []))["mnist-adv-similar"].verdict == verdict


@pytest.mark.parametrize("clm, verdict", [(0.9805, HOLDS), (0.9800, FAILS)])
def test_benign_cost_under_one_point(clm, verdict):
    records = [record("mnist-5k", "ulm", "benign", 0.0, 0.9900),
               record("mnist-5k", "clm", "benign", 0.0, clm)]
    assert by_id(evaluate_claims(records, []))["mnist-clm-benign-cost"].verdict == verdict


def test_means_over_runs():
    records = [record("mnist", "clm", "benign", 0.0, 0.97), record("mnist", "clm", "benign", 0.0,
                                                                   0.99),
               record("mnist", "ulm", "benign", 0.0, 0.985)]
    result = by_id(evaluate_claims(records, []))["mnist-clm-benign-cost"]
    assert result.evidence[0].left == pytest.approx(0.98)
    assert result.verdict == HOLDS  # 0.985 - 0.98 = 0.5 point


def test_saliency_claim_fails_when_clm_is_not_more_orthogonal():
    results = by_id(evaluate_claims([], [saliency("ulm", 0.2), saliency("clm", -0.4)]))
    assert results["saliency-more-orthogonal"].verdict == FAILS  # |cos| is what counts
