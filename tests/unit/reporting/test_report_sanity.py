"""Checks that catch a failed attack: each one flips from pass to flag on a constructed case
(hand-checked numbers), says "not run" with the reason when its inputs are missing, and pools
replicates like the claims do."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clmrepro.core.per_image import pack
from clmrepro.reporting.sanity import (FLAG, NOT_RUN, PASS, decode_check_file, reading,
                                       run_checks)
from clmrepro.reporting.stats import T_REPLICATES, T_SAMPLES, WILSON

T_975 = {2: 4.302652729749464, 4: 2.776445105197581}   # Student t, 0.975 quantile, by df


def table(per_image, n=4):
    """An (n, N) correctness table whose column means are the given expected accuracies."""
    out = np.zeros((n, len(per_image)), dtype=bool)
    for j, p in enumerate(per_image):
        out[: round(p * n), j] = True
    return out


def rec(attack, per_image=None, threat="paper", eps=0.3, r=0, population="ulm", mra=None,
        kind=None, transfer=None, n=None):
    out = {"experiment": "mnist", "dataset": "mnist-5k", "population": population,
           "regime": population, "attack": attack, "attack_kind": kind or attack, "eps": eps,
           "threat_model": threat, "replicate": r, "transfer": transfer,
           "mra": mra if mra is not None else float(np.mean(per_image)),
           "n_samples": n or (len(per_image) if per_image is not None else 100)}
    if per_image is not None:
        out["per_image"] = list(per_image)
    return out


def section(attacks=None, trace=None, zero=None, params=None):
    out = {"attacks": {name: {"params": (params or {}).get(name, {}),
                              "correct": pack(table(values))}
                       for name, values in (attacks or {}).items()}}
    if trace is not None:
        out["trace"] = trace
    if zero is not None:
        out["zero_gradient"] = {"loss": "dlr", "images": zero[0], "of": zero[1]}
    return out


def check_file(population="ulm", r=0, eps=0.3, **sections):
    return decode_check_file({
        "schema_version": 1, "experiment": "mnist", "population": population,
        "regime": population, "replicate": r, "n_submodels": 4, "eps": eps,
        "n_samples": 4, "threat_models": sections})


def result(results, check, threat):
    (found,) = [r for r in results if (r.check, r.threat_model) == (check, threat)]
    return found


def only(check, threat, records=(), files=()):
    return result(run_checks(list(records), list(files)), check, threat)


# ---- iterative vs single-step ----------------------------------------------------------------

PGD8 = [0.5, 0.75, 0.5, 0.75, 0.5, 0.75, 0.5, 0.75]
FGSM8 = [0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.25, 0.25]   # PGD − FGSM: .25 .5 .25 .25 0 .25 .25 .5


def test_pgd_weaker_than_fgsm_image_by_image_flags():
    """Differences mean 0.28125, s = 0.1602, s/√8 = 0.0566, × t(7) 2.365 → [+14.73, +41.52]."""
    res = only("iterative-vs-single-step", "adaptive",
               [rec("pgd", PGD8, "adaptive"), rec("fgsm", FGSM8, "adaptive")])
    (m,) = res.evidence
    assert res.verdict == FLAG and m.flags
    assert (m.interval.method, m.interval.n) == (T_SAMPLES, 8)
    diffs = [a - b for a, b in zip(PGD8, FGSM8)]
    mean = sum(diffs) / 8
    s = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 7)
    assert m.value == pytest.approx(0.28125)
    assert m.interval.low == pytest.approx(mean - 2.364624251592785 * s / math.sqrt(8))
    assert m.label == "PGD − FGSM, ε = 0.3"
    swapped = only("iterative-vs-single-step", "adaptive",
                   [rec("pgd", FGSM8, "adaptive"), rec("fgsm", PGD8, "adaptive")])
    assert swapped.verdict == PASS and not swapped.evidence[0].flags


def test_iterative_check_pairs_replicates():
    """PGD 30/32/31 vs FGSM 25/26/27: differences 5, 6, 4 points, s = 1, × 4.303/√3 →
    [+2.52, +7.48]: flag. With PGD 26/32/25 the interval [−5.5, +8.8] crosses 0: pass."""
    fgsm = [rec("fgsm", mra=m, r=r) for r, m in enumerate((0.25, 0.26, 0.27))]
    flagged = only("iterative-vs-single-step", "paper",
                   fgsm + [rec("pgd", mra=m, r=r) for r, m in enumerate((0.30, 0.32, 0.31))])
    (m,) = flagged.evidence
    assert (flagged.verdict, m.interval.method, m.interval.k) == (FLAG, T_REPLICATES, 3)
    half = T_975[2] * 0.01 / math.sqrt(3)
    assert (m.interval.low, m.interval.high) == pytest.approx((0.05 - half, 0.05 + half))
    passed = only("iterative-vs-single-step", "paper",
                  fgsm + [rec("pgd", mra=m, r=r) for r, m in enumerate((0.26, 0.32, 0.25))])
    assert passed.verdict == PASS


def test_iterative_check_needs_both_attacks():
    res = only("iterative-vs-single-step", "paper", [rec("pgd", PGD8)])
    assert res.verdict == NOT_RUN and res.evidence == ()
    assert res.reason == "needs PGD and FGSM at one ε under paper in the grid"
    # FGSM at another eps does not pair with it
    res = only("iterative-vs-single-step", "paper", [rec("pgd", PGD8), rec("fgsm", FGSM8, eps=0.1)])
    assert res.verdict == NOT_RUN


# ---- budget ---------------------------------------------------------------------------------

def test_mra_rising_with_eps_flags():
    falling = [rec("pgd", [0.75] * 4 + [0.5] * 4, eps=0.1), rec("pgd", FGSM8, eps=0.3)]
    assert only("budget", "paper", falling).verdict == PASS
    rising = [rec("pgd", FGSM8, eps=0.1), rec("pgd", PGD8, eps=0.2), rec("pgd", PGD8, eps=0.3)]
    res = only("budget", "paper", rising)
    assert res.verdict == FLAG
    assert [m.label for m in res.evidence] == ["PGD ε = 0.2 − ε = 0.1", "PGD ε = 0.3 − ε = 0.2"]
    assert [m.flags for m in res.evidence] == [True, False]      # equal at 0.2 and 0.3
    assert res.evidence[0].value == pytest.approx(0.28125)


def test_unbounded_pgd_must_leave_at_most_one_percent():
    def unbounded(values):
        return check_file(adaptive=section({"pgd-unbounded": values}))
    zero = only("budget", "adaptive", files=[unbounded([0.0] * 25)])
    assert zero.verdict == PASS and zero.evidence[0].interval.method == WILSON
    left = only("budget", "adaptive", files=[unbounded([0.25] + [0.0] * 24)])   # 1 of 100
    assert left.verdict == PASS and left.evidence[0].value == pytest.approx(0.01)
    more = only("budget", "adaptive", files=[unbounded([0.25, 0.25] + [0.0] * 23)])
    assert more.verdict == FLAG and more.evidence[0].value == pytest.approx(0.02)
    assert "pgd-unbounded" in only("budget", "adaptive", [rec("pgd", PGD8, "adaptive")]).reason
    assert "unbounded" not in only("budget", "paper", files=[unbounded([0.5] * 4)]).rule


# ---- convergence ----------------------------------------------------------------------------

PGD25 = [0.5] * 25


def moved(cells):
    """PGD25 with `cells` submodel answers turned wrong: each one is 1/100 = 1 point."""
    out = list(PGD25)
    for j in range(cells):
        out[j] -= 0.25
    return out


@pytest.mark.parametrize("variant, cells, verdict", [
    ("pgd-2x-steps", 0, PASS), ("pgd-2x-steps", 1, FLAG), ("pgd-restarts", 2, FLAG)])
def test_more_steps_or_restarts_moving_the_mra_flags(variant, cells, verdict):
    files = [check_file(paper=section({"pgd": PGD25, variant: moved(cells)},
                                      params={"pgd-restarts": {"restarts": 5}}))]
    res = only("convergence", "paper", files=files)
    assert res.verdict == verdict
    (m,) = res.evidence
    assert m.value == pytest.approx(-cells / 100)
    assert m.label == ("PGD with twice the steps − PGD" if variant == "pgd-2x-steps"
                       else "PGD with 5 restarts − PGD")


@pytest.mark.parametrize("incomplete, verdict", [(1, PASS), (2, FLAG)])
def test_incomplete_loss_traces_on_more_than_5_percent_flag(incomplete, verdict):
    spans = [0.06] * incomplete + [0.05] * (20 - incomplete)   # 0.05 itself is complete
    res = only("convergence", "adaptive",
               files=[check_file(adaptive=section(trace={"span_last10": spans}))])
    (m,) = res.evidence
    assert (res.verdict, m.value, m.of) == (verdict, incomplete, 20)


def test_a_rising_loss_on_images_the_attack_broke_is_no_incomplete_trace():
    # cross-entropy keeps rising once an image is broken; only the 10 unbroken images count
    spans = [0.9] * 10 + [0.06] + [0.01] * 9
    final = [0.0] * 10 + [0.5] * 10
    res = only("convergence", "adaptive",
               files=[check_file(adaptive=section(trace={"span_last10": spans, "final": final,
                                                         "path_best": final}))])
    (m,) = res.evidence
    assert (res.verdict, m.value, m.of) == (FLAG, 1, 10)   # 1 of 10 > 5%
    final[10] = 0.0                                       # that image broken too
    res = only("convergence", "adaptive",
               files=[check_file(adaptive=section(trace={"span_last10": spans, "final": final,
                                                         "path_best": final}))])
    (m,) = res.evidence
    assert (res.verdict, m.value, m.of) == (PASS, 0, 9)


def test_convergence_pools_replicates():
    files = [check_file(r=r, paper=section({"pgd": PGD25, "pgd-2x-steps": moved(cells)}))
             for r, cells in enumerate((1, 1, 2))]
    (m,) = only("convergence", "paper", files=files).evidence
    assert (m.interval.method, m.interval.k) == (T_REPLICATES, 3)
    assert m.value == pytest.approx(-4 / 300)


# ---- gradient-free vs gradient-based ----------------------------------------------------------

GRID_PGD = [0.5, 0.25, 0.75, 0.0, 1.0, 1.0, 1.0, 1.0]
GRID_FGSM = [0.75, 0.5, 0.5, 0.25, 1.0, 1.0, 1.0, 1.0]
FILE_PGD = [0.5, 0.5, 0.75, 0.0]
# per-image minimum over the gradient attacks on the first 4 images: .5 .25 .5 0 (31.25%)


def gradient_case(square):
    records = [rec("pgd", GRID_PGD, "adaptive"), rec("fgsm", GRID_FGSM, "adaptive"),
               # neither AutoAttack (it holds Square) nor another eps is a gradient attack here
               rec("autoattack", [0.0] * 8, "adaptive"),
               rec("pgd", [0.0] * 8, "adaptive", eps=0.4)]
    files = [check_file(adaptive=section({"pgd": FILE_PGD, "square": square}))]
    return only("gradient-free", "adaptive", records, files)


def test_square_below_the_gradient_attacks_flags():
    """Square .25 .25 .75 0: with it the minimum is .25 .25 .5 0 (25%), 6.25 points lower;
    one image (the first) is one Square alone breaks further (on the second it only ties)."""
    res = gradient_case([0.25, 0.25, 0.75, 0.0])
    gradient, with_square, difference, count = res.evidence
    assert res.verdict == FLAG and difference.flags
    assert (gradient.value, with_square.value, difference.value) == pytest.approx(
        (0.3125, 0.25, 0.0625))
    assert (count.value, count.of) == (1, 4)
    assert gradient.label == ("per-image minimum over the gradient attacks (check-file pgd, "
                              "fgsm, pgd)")
    assert res.key_measure is difference


def test_square_no_stronger_passes():
    res = gradient_case([0.5, 0.5, 0.5, 0.25])
    assert res.verdict == PASS and res.evidence[2].value == 0.0
    assert res.key_text.startswith("gradient attacks − with Square: +0.00")


def test_square_check_threshold_is_0_2_points():
    """On 125 images of 4 submodels one answer is 0.2 points: not more than 0.2, so pass;
    two answers (0.4 points) flag."""
    pgd = [0.5] * 125
    for cells, verdict in ((1, PASS), (2, FLAG)):
        square = [0.25] * cells + [0.5] * (125 - cells)
        files = [check_file(paper=section({"pgd": pgd, "square": square}))]
        assert only("gradient-free", "paper", files=files).verdict == verdict


def test_square_check_not_run_without_square_or_gradients():
    res = only("gradient-free", "paper", files=[check_file(paper=section({"pgd": FILE_PGD}))])
    assert (res.verdict, res.reason) == (NOT_RUN, "the check files' paper sections have no square")
    res = only("gradient-free", "paper", files=[check_file(paper=section({"square": FILE_PGD}))])
    assert res.verdict == NOT_RUN and "no gradient attack" in res.reason


# ---- white-box vs transfer --------------------------------------------------------------------

def test_adaptive_above_the_paper_protocol_on_the_same_images_flags():
    """The adaptive set covers the first 4 images, the paper's 8. On those 4 the adaptive
    MRA is 25 points above the paper's (flag), although over all 8 the paper's is higher."""
    adaptive = rec("pgd", [0.5, 0.75, 0.5, 0.5], "adaptive")
    paper = rec("pgd", [0.25, 0.5, 0.25, 0.25, 1.0, 1.0, 1.0, 1.0])
    assert paper["mra"] > adaptive["mra"]
    res = only("white-box-vs-transfer", "adaptive", [adaptive, paper])
    (m,) = res.evidence
    assert (res.verdict, m.value, m.interval.n) == (FLAG, 0.25, 4)
    assert m.label == "adaptive − paper protocol, PGD, ε = 0.3 (first 4 images)"
    lower = rec("pgd", [0.0, 0.25, 0.0, 0.25], "adaptive")
    assert only("white-box-vs-transfer", "adaptive", [lower, paper]).verdict == PASS


def transfer_record(population, diagonal, off=0.5):
    matrix = [[diagonal[i] if i == j else off for j in range(4)] for i in range(4)]
    return rec("pgd", threat="transfer", population=population, mra=off,
               transfer={"matrix": matrix, "diagonal": diagonal, "off_diagonal_mean": off})


@pytest.mark.parametrize("population, diagonal, verdict", [
    ("clm", [0.01, 0.02, 0.05, 0.0], PASS),    # 5% itself is allowed
    ("clm", [0.01, 0.02, 0.06, 0.0], FLAG),
    ("ulm-adv", [0.3, 0.4, 0.5, 0.4], PASS),   # mean diagonal 0.4 below off-diagonal 0.5
    ("ulm-adv", [0.6, 0.6, 0.5, 0.7], FLAG),   # 0.6 above it
])
def test_transfer_diagonal(population, diagonal, verdict):
    res = only("white-box-vs-transfer", "transfer", [transfer_record(population, diagonal)])
    assert res.verdict == verdict
    if population == "ulm-adv":
        assert res.evidence[0].value == pytest.approx(sum(diagonal) / 4 - 0.5)


def test_white_box_check_applies_to_transfer_and_adaptive_only():
    results = run_checks([rec("pgd", PGD8)], [])
    assert {r.threat_model for r in results if r.check == "white-box-vs-transfer"} == {
        "transfer", "adaptive"}


# ---- zero gradients, silent success, random noise ---------------------------------------------

@pytest.mark.parametrize("images, verdict", [(0, PASS), (1, FLAG)])
def test_zero_gradients(images, verdict):
    files = [check_file(r=r, paper=section(zero=(images if r == 1 else 0, 50)))
             for r in range(3)]
    res = only("zero-gradients", "paper", files=files)
    (m,) = res.evidence
    assert (res.verdict, m.value, m.of) == (verdict, images, 150)


def test_a_path_adversarial_midway_flags_silent_success():
    best = [0.25, 0.5, 0.0, 0.0]
    clean = check_file(paper=section(trace={"path_best": best, "final": best}))
    assert only("silent-success", "paper", files=[clean]).verdict == PASS
    midway = check_file(paper=section(trace={"path_best": best, "final": [0.5, 0.5, 0.0, 0.0]}))
    res = only("silent-success", "paper", files=[midway])
    mean, count = res.evidence
    assert (res.verdict, mean.value, count.value, count.of) == (FLAG, 0.0625, 1, 4)
    # one image 0.25 worse among 50: a mean of exactly 0.5 points does not exceed the rule
    edge = check_file(paper=section(trace={"path_best": [0.0] * 50,
                                           "final": [0.25] + [0.0] * 49}))
    assert only("silent-success", "paper", files=[edge]).verdict == PASS


def test_noise_beating_pgd_flags():
    """Noise − PGD per image: −.25 −.25 −.5 −.25 −.25; mean −0.3, s = 0.1118, × t(4)/√5 →
    [−43.88, −16.12] points: below 0."""
    pgd = [0.5, 0.75, 0.5, 0.75, 0.5]
    noise = [0.25, 0.5, 0.0, 0.5, 0.25]
    res = only("random-noise", "adaptive",
               files=[check_file(adaptive=section({"pgd": pgd, "noise": noise},
                                                  params={"noise": {"draws": 20}}))])
    (m,) = res.evidence
    assert res.verdict == FLAG and m.label == "worst of 20 noise draws − PGD"
    half = T_975[4] * math.sqrt(0.05 / 4) / math.sqrt(5)
    assert (m.interval.low, m.interval.high) == pytest.approx((-0.3 - half, -0.3 + half))
    res = only("random-noise", "adaptive",
               files=[check_file(adaptive=section({"pgd": noise, "noise": pgd}))])
    assert res.verdict == PASS


# ---- not run, threat models, files --------------------------------------------------------------

def test_without_check_files_the_file_checks_say_not_run():
    results = run_checks([rec("pgd", PGD8)], [])
    for check in ("convergence", "gradient-free", "zero-gradients", "silent-success",
                  "random-noise"):
        for threat in ("paper", "adaptive"):
            res = result(results, check, threat)
            assert res.verdict == NOT_RUN and "no check file" in res.reason
    assert not [r for r in results if r.check == "convergence" and r.threat_model == "transfer"]


def test_a_missing_section_or_key_says_which():
    files = [check_file(paper=section({"pgd": PGD25}))]
    results = run_checks([], files)
    assert result(results, "zero-gradients", "adaptive").reason == \
        "the check files have no adaptive section"
    assert result(results, "zero-gradients", "paper").reason == \
        "the check files' paper sections have no zero_gradient count"
    assert result(results, "random-noise", "paper").reason == \
        "the check files' paper sections have no noise beside pgd"


def test_a_transfer_section_adds_the_transfer_column():
    files = [check_file(transfer=section(zero=(0, 10)))]
    res = only("zero-gradients", "transfer", files=files)
    assert res.verdict == PASS


def test_results_cover_every_population_once_per_check_and_threat_model():
    records = [rec("pgd", PGD8), rec("pgd", PGD8, population="clm"),
               rec("strongest", PGD8, population="clm")]
    results = run_checks(records, [check_file(population="clm-adv")])
    keys = [(r.population, r.check, r.threat_model) for r in results]
    assert len(keys) == len(set(keys)) == 3 * 18
    assert [p for p in dict.fromkeys(r.population for r in results)] == ["clm", "clm-adv", "ulm"]


def test_check_files_are_refused_when_unreadable():
    with pytest.raises(ValueError, match="schema_version 2"):
        decode_check_file({"schema_version": 2}, "x.json")
    with pytest.raises(ValueError, match="'population' is missing"):
        decode_check_file({"schema_version": 1, "experiment": "mnist"}, "x.json")
    broken = {"schema_version": 1, "experiment": "mnist", "population": "ulm",
              "threat_models": {"paper": {"attacks": {"pgd": {"correct": {
                  "shape": [4, 8], "format": "packbits-base64", "bits": ""}}}}}}
    with pytest.raises(ValueError, match="x.json: threat_models.paper.attacks.pgd"):
        decode_check_file(broken, "x.json")


# ---- the reading --------------------------------------------------------------------------------

def iterative_results(adaptive_pgd):
    records = [rec("pgd", PGD8), rec("fgsm", FGSM8)]
    if adaptive_pgd is not None:
        records += [rec("pgd", adaptive_pgd, "adaptive"), rec("fgsm", FGSM8, "adaptive")]
    return [r for r in run_checks(records, []) if r.population == "ulm"]


def test_reading_explains_a_paper_protocol_flag():
    passing = reading(iterative_results([0.0] * 8))
    assert "iterative vs single-step under paper (PGD − FGSM, ε = 0.3: +28.12" in passing
    assert "property of the protocol rather than a failed PGD; the adaptive column does not " \
           "flag" in passing
    both = reading(iterative_results(PGD8))
    assert "the adaptive column flags too, so PGD itself is falling short" in both
    unconfirmed = reading(iterative_results(None))
    assert "unless the adaptive column flags too; it was not run" in unconfirmed
    head = f"2 of {len(iterative_results(None))} checks flag"
    assert not unconfirmed.startswith(head)      # one flag only when adaptive was not run
    assert both.startswith("2 of ")


def test_reading_without_flags():
    results = run_checks([rec("pgd", FGSM8), rec("fgsm", PGD8)], [])
    quiet = reading(results)
    # most checks need a check file, which these records do not have
    not_run = sum(r.verdict == NOT_RUN for r in results)
    assert not_run and f"No check that ran flags, but {not_run} could not run" in quiet
    ran = [r for r in results if r.verdict != NOT_RUN]
    assert ran and "No check flags: nothing here suggests a failed attack." in reading(ran)


# ---- through the report job: metrics.json, DVC's metrics, the rendered section --------------

def scores(attack, per_image, threat="paper"):
    out = rec(attack, per_image, threat)
    out.update(per_submodel=[0.5] * 4, n_submodels=4, paper=None, architecture="lenet5",
               attack_params={"eps": 0.3}, crafting="per-batch")
    del out["per_image"]
    out["correct"] = pack(table(per_image))
    return out


def raw_check_file():
    return {"schema_version": 1, "experiment": "mnist", "population": "ulm", "regime": "ulm",
            "replicate": 0, "n_submodels": 4, "eps": 0.3, "n_samples": 4,
            "threat_models": {"paper": section(zero=(0, 4))}}


@pytest.fixture(scope="module")
def built(tmp_path_factory, report_tools):
    import json

    root = tmp_path_factory.mktemp("sanity")
    out = report_tools["build"](root, [scores("pgd", PGD8), scores("fgsm", FGSM8)],
                                [raw_check_file()])
    return {"out": out, "metrics": json.loads(out["metrics"].read_text()),
            "md": out["report_md"].read_text(), "html": out["report_html"].read_text()}


def test_metrics_json_holds_every_result(built):
    sanity = built["metrics"]["sanity"]
    assert len(sanity) == 18          # 8 checks over their threat models, one population
    (iterative,) = [r for r in sanity if (r["check"], r["threat_model"]) ==
                    ("iterative-vs-single-step", "paper")]
    diffs = [a - b for a, b in zip(PGD8, FGSM8)]
    s = math.sqrt(sum((d - 0.28125) ** 2 for d in diffs) / 7)
    half = 2.364624251592785 * s / math.sqrt(8)
    assert iterative == {
        "check": "iterative-vs-single-step", "experiment": "mnist", "population": "ulm",
        "regime": "ulm", "threat_model": "paper", "verdict": "flag",
        "rule": "Flag when the 95% interval of MRA(PGD) − MRA(FGSM) at one ε lies above 0 "
                "(the iterative attack significantly weaker than the single-step one).",
        "source": "Carlini et al. 2019, “On Evaluating Adversarial Robustness”, §5",
        "evidence": [{"label": "PGD − FGSM, ε = 0.3", "kind": "difference", "value": 0.28125,
                      "interval": {"mean": 0.28125, "low": round(0.28125 - half, 6),
                                   "high": round(0.28125 + half, 6),
                                   "method": T_SAMPLES, "k": 1, "n": 8},
                      "of": None, "flags": True}],
        "reason": None}
    (zero,) = [r for r in sanity if (r["check"], r["threat_model"]) ==
               ("zero-gradients", "paper")]
    assert (zero["verdict"], zero["evidence"][0]["value"], zero["evidence"][0]["of"]) == (
        "pass", 0, 4)
    (missing,) = [r for r in sanity if (r["check"], r["threat_model"]) ==
                  ("zero-gradients", "adaptive")]
    assert (missing["verdict"], missing["evidence"], missing["reason"]) == (
        "not run", [], "the check files have no adaptive section")


def test_summary_and_dvc_metrics_count_the_verdicts(built):
    import json

    sanity = built["metrics"]["sanity"]
    summary = built["metrics"]["summary"]
    counts = {v: sum(r["verdict"] == v for r in sanity) for v in (FLAG, PASS, NOT_RUN)}
    assert (summary["checks_flagged"], summary["checks_passed"], summary["checks_not_run"]) == (
        counts[FLAG], counts[PASS], counts[NOT_RUN])
    assert counts[FLAG] >= 1 and counts[PASS] >= 1 and counts[NOT_RUN] >= 1
    dvc = json.loads(built["out"]["dvc_metrics"].read_text())
    assert dvc["summary/checks_flagged"] == counts[FLAG]
    assert dvc["summary/checks_passed"] == counts[PASS]
    assert dvc["summary/checks_not_run"] == counts[NOT_RUN]


def test_the_section_comes_before_the_claims(built):
    md, html = built["md"], built["html"]
    assert md.index("## Tables 1–5") < md.index("## Is the robustness real?") < \
        md.index("## The paper's claims")
    assert html.index('<section id="tables">') < html.index('<section id="sanity">') < \
        html.index('<section id="claims">')
    assert ("| iterative vs single-step        | **flag**: PGD − FGSM, ε = 0.3: +28.12 "
            in md)
    assert 'class="check check-flag"' in html and 'class="check check-pass"' in html
    assert 'class="check check-not-run"' in html and 'class="check check-none"' in html


def test_old_plans_without_sanity_inputs_still_check_the_records(tmp_path, report_tools):
    import json

    out = report_tools["build"](tmp_path, [scores("pgd", PGD8), scores("fgsm", FGSM8)])
    metrics = json.loads(out["metrics"].read_text())
    verdicts = {(r["check"], r["threat_model"]): r["verdict"] for r in metrics["sanity"]}
    assert verdicts[("iterative-vs-single-step", "paper")] == FLAG
    assert verdicts[("zero-gradients", "paper")] == NOT_RUN


# ---- rule texts from the knobs the jobs ran with ----------------------------------------------

def test_the_convergence_rule_says_the_restarts_the_jobs_ran_with():
    """Item 8 of issue 25: `restarts` is a spec knob, so the rule's text reads it from the
    check files (the spec's value as the sanity job ran it), and the default without one."""
    ten = check_file(adaptive=section({"pgd": [0.5] * 4, "pgd-restarts": [0.5] * 4},
                                      params={"pgd-restarts": {"restarts": 10}}))
    res = only("convergence", "adaptive", files=[ten])
    assert "10 random restarts" in res.rule and "5 random" not in res.rule
    assert "5 random restarts" in only("convergence", "adaptive", [rec("pgd", PGD8)]).rule
