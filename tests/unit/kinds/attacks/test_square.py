"""Square as a grid attack (clmrepro.kinds.attacks.square): legal points, a real attack on
one model and on the whole population, and a spec entry that compiles into explicit params."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from clmrepro.core.attacks.adaptive import craft_adaptive
from clmrepro.core.attacks.executors import craft_paper
from clmrepro.core.attacks.kinds import check_perturbation
from clmrepro.core.attacks.sequential import build_attack, seed_attack
from clmrepro.core.seeding import generator
from clmrepro.kinds import attacks
from clmrepro.plan.compile import compile_spec
from clmrepro.calibration.files import reference_calibration
from clmrepro.plan.estimate import estimate_seconds
from clmrepro.spec import SpecError, parse_spec

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[4]
SQUARE = attacks.get("square")
PARAMS = {"n_queries": 60, "n_restarts": 1, "p_init": 0.8, "loss": "margin",
          "resc_schedule": False}
SPEC = """
name: sq
experiments:
  - id: e
    dataset: {name: mnist-5k, n_train: 600, n_test: 200}
    architecture: lenet5
    populations: [{id: ulm, size: 2, regime: {kind: ulm}, training: {epochs: 1}}]
    evaluation:
      n_samples: 40
      threat_models: [paper, transfer, adaptive]
      attacks: [ATTACK]
"""


def population(n, seed=0):
    """n linear submodels close to one another (a small perturbation of one model each)."""
    torch.manual_seed(seed)
    base = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
    members = []
    for _ in range(n):
        member = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10))
        member.load_state_dict(base.state_dict())
        with torch.no_grad():
            member[1].weight.add_(0.002 * torch.randn_like(member[1].weight))
        members.append(member.eval())
    return members


def correct_images(models, n=24, seed=1):
    """Random images labelled as the submodels' mean prediction: (almost) all correct."""
    g = generator(seed)
    x = torch.rand(n, 1, 32, 32, generator=g)
    with torch.no_grad():
        return x, torch.stack([m(x).softmax(1) for m in models]).mean(0).argmax(1)


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).double().mean().item()


def test_a_crafted_batch_stays_in_the_ball_and_in_range_and_is_reproducible():
    model = population(1)[0]
    x, y = correct_images([model])
    attack = build_attack(SQUARE, model, 0.1, PARAMS)
    assert (attack.n_queries, attack.p_init, attack.loss, attack.rescale_schedule) == (
        60, 0.8, "margin", False)
    seed_attack(attack, 7)
    adv = attack(x, y).detach()
    check_perturbation(x, adv, 0.1)
    assert not torch.equal(adv, x)
    seed_attack(attack, 7)
    assert torch.equal(attack(x, y).detach(), adv)


def test_it_lowers_the_accuracy_of_one_model_on_the_paper_protocol():
    models = population(2)
    x, y = correct_images(models)
    crafters = torch.zeros(len(x), dtype=torch.long)  # all crafted on submodel 0
    adv = craft_paper(models, x, y, kind=SQUARE, eps=0.2, params=PARAMS, crafters=crafters,
                      batch_size=12, seed=0, device="cpu")
    check_perturbation(x, adv, 0.2)
    assert accuracy(models[0], x, y) > 0.9
    assert accuracy(models[0], adv, y) < 0.5


def test_it_lowers_the_expected_accuracy_of_the_whole_population():
    models = population(3)
    x, y = correct_images(models)
    adv = craft_adaptive(models, x, y, kind=SQUARE, eps=0.2, params=PARAMS, batch_size=12,
                         seed=0, device="cpu")
    check_perturbation(x, adv, 0.2)
    before = sum(accuracy(m, x, y) for m in models) / len(models)
    after = sum(accuracy(m, adv, y) for m in models) / len(models)
    assert before > 0.9 and after < 0.5


def test_the_spec_accepts_kind_square_with_the_reference_defaults():
    spec = parse_spec(SPEC.replace("ATTACK", "{kind: square, eps: [0.3], n_queries: 100}"))
    square = spec.experiments[0].evaluation.attacks[0]
    assert isinstance(square, SQUARE.Spec)
    assert (square.n_queries, square.n_restarts, square.p_init, square.loss,
            square.resc_schedule) == (100, 1, 0.8, "margin", False)


@pytest.mark.parametrize("entry", ["{kind: square, eps: [0.3], n_querys: 100}",
                                   "{kind: square, eps: [0.3], loss: dlr}",
                                   "{kind: square, eps: [0.3], p_init: 0}"])
def test_the_spec_rejects_an_unknown_knob_or_a_bad_value(entry):
    with pytest.raises(SpecError):
        parse_spec(SPEC.replace("ATTACK", entry))


def test_compiling_gives_square_jobs_with_every_param_explicit_and_a_price():
    spec = parse_spec(SPEC.replace("ATTACK", "{kind: square, eps: [0.3], n_queries: 100}"))
    plan = compile_spec(spec, "specs/sq.yaml")
    jobs = [j.job for j in plan.jobs if j.stage == "attack"]
    assert jobs
    for job in jobs:
        attack = job["params"]["attack"]
        assert attack["kind"] == "square"
        assert attack["params"] == {"n_queries": 100, "n_restarts": 1, "p_init": 0.8,
                                    "loss": "margin", "resc_schedule": False}
        assert set(job["params"]["threat_models"]) == {"paper", "transfer", "adaptive"}
    job = jobs[0]
    fewer = {**job, "params": {**job["params"], "attack": {
        **job["params"]["attack"], "params": {**PARAMS, "n_queries": 10}}}}
    # the price grows with the queries (an upper bound: every image queried throughout)
    calibration = reference_calibration()
    assert estimate_seconds(fewer, calibration) < estimate_seconds(job, calibration)


def test_the_report_lists_square_as_a_departure_from_the_paper():
    from clmrepro.plan.departures import departures_from_paper

    spec = parse_spec(SPEC.replace("ATTACK", "{kind: square, eps: [0.3]}"))
    assert any("square: Square is not one of the paper's attacks" in note
               for note in departures_from_paper(spec))
