"""The loss-function check (clmrepro.kinds.checks.loss_function) flips on a constructed case:
a population whose logits are scaled ×1000 (the same predictions, so the same true robustness;
the cross-entropy saturates and its input gradient is exactly 0) flags under both threat models
the sanity job runs, and the unscaled population passes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clmrepro.core.attacks.sanity import PgdSettings, SanitySettings, check_threat
from clmrepro.core.per_image import expected_accuracy, unpack
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import generator
from clmrepro.kinds import checks as check_kinds
from clmrepro.kinds.checks import loss_function
from clmrepro.reporting.sanity import FLAG, NOT_RUN, PASS, decode_check_file, run_checks

torch.set_num_threads(1)
CPU = AttackRuntime(torch.device("cpu"))
EPS, ALPHA, STEPS = 0.3, 0.05, 10


def population(scale: float) -> list[nn.Module]:
    """Three 2-class linear members on 4×4 images: class 0's logit minus class 1's is
    16·mean(x) − 8 + c with c = 1, 2, 3 (right on the images below, each broken by ε ≤ 0.19),
    all logits times ``scale``."""
    members = []
    for c in (1.0, 2.0, 3.0):
        layer = nn.Linear(16, 2)
        with torch.no_grad():
            layer.weight.copy_(scale * torch.stack([torch.ones(16), torch.zeros(16)]))
            layer.bias.copy_(scale * torch.tensor([-8.0 + c, 0.0]))
        members.append(nn.Sequential(nn.Flatten(), layer).eval())
    return members


def check_file(models, threat: str, points: float = 1.0) -> dict:
    x = 0.5 + 0.02 * torch.rand(8, 1, 4, 4, generator=generator(0))
    y = torch.zeros(8, dtype=torch.long)
    params = {"checks": ["margin-loss"], "threat_models": [threat], "samples": 8, "eps": EPS,
              "pgd": {"alpha": ALPHA, "steps": STEPS, "random_start": False},
              "margin_points": points}
    settings = SanitySettings(jobs=check_kinds.jobs(["margin-loss"]), threat_models=(threat,),
                              pgd=PgdSettings(EPS, ALPHA, STEPS, False), params=params,
                              crafting="per-batch", batch_size=4)
    crafters = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2])
    section = check_threat(models, x, y, threat=threat, settings=settings, seed=0,
                           runtime=CPU, crafters=crafters)
    return {"schema_version": 1, "experiment": "toy", "population": "ulm", "regime": "ulm",
            "replicate": 0, "n_submodels": 3, "eps": EPS, "n_samples": 8,
            "checks": ["margin-loss"], "threat_models": {threat: section}}


def mra(raw: dict, threat: str, name: str) -> float:
    table = unpack(raw["threat_models"][threat]["attacks"][name]["correct"])
    return float(expected_accuracy(table).mean())


def verdict_of(raw: dict, threat: str):
    (found,) = [r for r in run_checks([], [decode_check_file(raw)])
                if (r.check, r.threat_model) == ("loss-function", threat)]
    return found


@pytest.mark.parametrize("threat", ["paper", "adaptive"])
def test_logits_times_1000_flag_and_the_unscaled_population_passes(threat):
    scaled, plain = check_file(population(1000.0), threat), check_file(population(1.0), threat)
    # identical predictions; the cross-entropy PGD never leaves the clean images of the
    # scaled population (its gradient is exactly 0), the margin PGD breaks every member
    assert mra(scaled, threat, "pgd") == 1.0 and mra(scaled, threat, "pgd-margin") == 0.0
    assert mra(plain, threat, "pgd") == mra(plain, threat, "pgd-margin") == 0.0
    flagged, passed = verdict_of(scaled, threat), verdict_of(plain, threat)
    assert flagged.verdict == FLAG and passed.verdict == PASS
    (ce, cw, gap) = flagged.evidence
    assert (ce.value, cw.value, gap.value) == (1.0, 0.0, -1.0) and gap.flags
    assert "more than 1 points" in flagged.rule
    params = scaled["threat_models"][threat]["attacks"]["pgd-margin"]["params"]
    assert (params["steps"], params["alpha"], params["loss"]) == (STEPS, ALPHA, "margin")


def test_the_threshold_is_the_knob_the_job_ran_with():
    """A gain of exactly the threshold passes; the rule says the recorded threshold."""
    raw = check_file(population(1000.0), "adaptive", points=100.0)
    result = verdict_of(raw, "adaptive")
    assert result.verdict == PASS and "more than 100 points" in result.rule


def test_the_margin_is_the_best_other_logit_minus_the_true_one():
    logits = torch.tensor([[3.0, 1.0, 0.0], [1.0, 3.0, 0.5]])
    assert loss_function.margin(logits, torch.tensor([0, 0])).tolist() == [-2.0, 2.0]


def test_a_default_check_that_reports_without_it_do_not_show():
    """In the default checks (issue 26), but a report whose check files predate it (their
    `checks` do not name it) shows no row rather than "not run"."""
    assert "margin-loss" in check_kinds.DEFAULT_JOBS
    older = check_file(population(1.0), "adaptive")
    older["checks"] = ["convergence"]
    assert all(r.check != "loss-function" for r in run_checks([], [decode_check_file(older)]))
    asked = check_file(population(1.0), "adaptive")
    del asked["threat_models"]["adaptive"]["attacks"]["pgd-margin"]
    assert verdict_of(asked, "adaptive").verdict == NOT_RUN


def test_the_spec_the_plan_and_the_sanity_step_run_it(tmp_path):
    """Named in the spec's checks, its knob enters the job's params; the sanity step writes
    its attack, and the plan sizes the file and prices the extra PGD."""
    import json

    from clmrepro.core.checkpoints import save_population
    from clmrepro.core.models import build_model
    from clmrepro.plan.estimate import estimate_seconds
    from clmrepro.plan.jsonsize import file_bytes
    from clmrepro.plan.storage import sanity_file
    from clmrepro.spec.models import Sanity
    from clmrepro.steps.sanity import run_sanity

    spec = Sanity(checks=["convergence", "margin-loss"], margin_points=2)
    knobs = spec.model_dump()
    assert check_kinds.get("margin-loss").job_params(knobs) == {"margin_points": 2.0}
    torch.manual_seed(0)
    models = [build_model("lenet5", in_channels=3).eval() for _ in range(2)]
    save_population(tmp_path / "population.pt", models, {
        "architecture": "lenet5", "regime": "ulm", "size": 2, "in_channels": 3,
        "num_classes": 10, "dataset": "fake-cifar10"})
    sanity = {"checks": ["convergence", "margin-loss"], "threat_models": ["paper", "adaptive"],
              "samples": 6, "eps": 8 / 255,
              "pgd": {"alpha": 2 / 255, "steps": 2, "random_start": True}, "restarts": 2,
              "margin_points": 2.0}
    job = {"id": "sanity-cifar-ulm", "stage": "sanity", "spec": "t", "experiment": "cifar",
           "seed": 3, "threads": 1, "device": "cpu", "gpu": False,
           "inputs": {"population": str(tmp_path / "population.pt")},
           "outputs": {"sanity": str(tmp_path / "sanity.json")},
           "params": {"dataset": {"name": "fake-cifar10", "root": "data", "n_train": 0,
                                  "n_test": 6, "split_seed": 0},
                      "architecture": "lenet5", "population": {"id": "ulm", "regime": "ulm",
                                                               "size": 2, "from": None},
                      "threat_models": ["paper", "adaptive"], "crafting": "per-batch",
                      "n_samples": 6, "batch_size": 4, "replicate": 0, "sanity": sanity}}
    run_sanity(job)
    blob = json.loads((tmp_path / "sanity.json").read_text())
    for threat in ("paper", "adaptive"):
        attacks = blob["threat_models"][threat]["attacks"]
        assert set(attacks) == {"pgd", "pgd-2x-steps", "pgd-restarts", "pgd-margin"}
        assert attacks["pgd-margin"]["params"]["flag_points"] == 2.0
    written = (tmp_path / "sanity.json").stat().st_size
    assert abs(file_bytes(sanity_file(job)) - written) < 0.05 * written
    without = json.loads(json.dumps(job))
    without["params"]["sanity"]["checks"] = ["convergence"]
    from clmrepro.calibration.files import reference_calibration
    calibration = reference_calibration()
    assert estimate_seconds(job, calibration) > estimate_seconds(without, calibration)  # one more PGD
