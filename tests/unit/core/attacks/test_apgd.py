"""AutoAttack ``rand`` on a random-dispatch population: our APGD decides on the exact expected
accuracy (core.attacks.apgd; issue 26, item 4)."""

import copy

import pytest
import torch
from torch import nn

from clmrepro.core.attacks.adaptive import ExpectedLossPGD, OnDispatch, cascade
from clmrepro.core.attacks.apgd import (
    ExpectedAccuracyAPGD,
    checkpoint_intervals,
    dlr_loss,
    population_outputs,
)
from clmrepro.core.attacks.arc import expected_accuracy_of
from clmrepro.core.attacks.kinds import check_perturbation
from clmrepro.core.metrics import population_classifier
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import generator
from clmrepro.kinds.attacks import autoattack

torch.set_num_threads(1)
CPU = AttackRuntime(torch.device("cpu"))


class Constant(nn.Module):
    """Answers class ``k`` whatever the input: its loss is flat, its input gradient 0."""

    def __init__(self, k):
        super().__init__()
        self.k = k
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 10) + 0 * self.w + 0 * x.flatten(1).sum(1, keepdim=True)
        out[:, self.k] = 1.0
        return out


def AlwaysWrong():  # the labels are 0
    return Constant(1)


def AlwaysRight():
    return Constant(0)


class Threshold(nn.Module):
    """Right (class 0) while mean(x) <= 0.6, class 1 once mean(x) > 0.6; logits smooth in
    mean(x), so the gradient says: raise every pixel."""

    def __init__(self, at=0.6, scale=10.0):
        super().__init__()
        self.at = at
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x):
        d = self.scale * (x.flatten(1).mean(1) - self.at)
        return torch.cat([-d[:, None], d[:, None], torch.full((len(x), 8), -10.0)], 1)


def constructed_case(n=90, seed=3):
    """Issue 26's case: member 0 always wrong, members 1-2 broken once mean(x) > 0.6; the
    images' means lie in [0.36, 0.5], so eps 0.3 breaks every one."""
    g = generator(seed)
    base = 0.36 + 0.14 * torch.rand(n, 1, 1, 1, generator=g)
    x = (base + 0.05 * (2 * torch.rand(n, 1, 4, 4, generator=g) - 1)).clamp(0, 1)
    return x, torch.zeros(n, dtype=torch.long)


def rand_params(steps=10, restarts=1, eot=2):
    return {"version": "rand", "norm": "Linf", "n_classes": 10, "steps": steps,
            "n_queries": 5, "n_restarts": restarts, "eot_iter": eot}


def accuracy_of(models):
    return expected_accuracy_of(population_classifier(models, CPU))


def torchattacks_rand(models, eps, p):
    """Before issue 26: torchattacks' APGDs on the dispatch, in the expected-accuracy cascade."""
    return OnDispatch(models, lambda d: cascade(models, autoattack.components(d, eps, p), CPU))


def unchanged(x, adv):
    return int((adv == x).flatten(1).all(1).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constructed_case_ends_at_or_below_expected_loss_pgd(seed):
    models = [AlwaysWrong().eval(), Threshold().eval(), Threshold().eval()]
    x, y = constructed_case()
    accuracy = accuracy_of(models)
    assert accuracy(x, y).mean() == pytest.approx(2 / 3)
    adv = autoattack.adaptive(models, 0.3, rand_params(), CPU)(x, y, seed)
    check_perturbation(x, adv, 0.3)
    pgd = ExpectedLossPGD(models, eps=0.3, alpha=0.01, steps=40, random_start=True)(
        x, y, generator(seed))
    ours, reference = accuracy(adv, y).mean().item(), accuracy(pgd, y).mean().item()
    assert ours <= reference
    assert ours == 0.0 and unchanged(x, adv) == 0
    # the case catches one-draw decisions: torchattacks' APGD skips about a third of the
    # images (one draw at the clean image answered wrong) and returns them unchanged
    old = torchattacks_rand(models, 0.3, rand_params())(x, y, seed)
    assert accuracy(old, y).mean().item() > reference + 0.05
    assert unchanged(x, old) >= 10


def test_kept_iterate_is_the_lowest_expected_accuracy_when_none_reaches_zero():
    # member 0 is never fooled, so A cannot go below 1/3: each image keeps an iterate at 1/3
    models = [AlwaysRight().eval(), Threshold().eval(), Threshold().eval()]
    x, y = constructed_case(n=30)
    adv = autoattack.adaptive(models, 0.3, rand_params(), CPU)(x, y, 0)
    check_perturbation(x, adv, 0.3)
    assert accuracy_of(models)(adv, y).tolist() == pytest.approx([1 / 3] * len(x))


def test_images_wrong_on_every_submodel_are_not_attacked():
    models = [AlwaysWrong().eval() for _ in range(2)]
    x, y = constructed_case(n=8)
    apgd = ExpectedAccuracyAPGD(models[0], population_outputs(models, CPU), eps=0.3, steps=5,
                                n_restarts=2, loss="ce", eot_iter=1)
    assert torch.equal(apgd(x, y), x)


def deterministic_population(n=3):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    x = torch.rand(60, 1, 8, 8, generator=generator(1))
    return [copy.deepcopy(net) for _ in range(n)], x, net(x).argmax(1)


@pytest.mark.parametrize("eps,steps,restarts,eot", [(0.05, 10, 1, 2), (0.05, 20, 2, 1),
                                                    (0.1, 5, 1, 3)])
def test_deterministic_population_gives_what_torchattacks_gives(eps, steps, restarts, eot):
    """All submodels equal: every expectation is the one model's value, so the expected
    accuracy per image equals the one torchattacks' APGD reaches."""
    models, x, y = deterministic_population()
    p = rand_params(steps, restarts, eot)
    ours = autoattack.adaptive(models, eps, p, CPU)(x, y, 0)
    before = torchattacks_rand(models, eps, p)(x, y, 0)
    check_perturbation(x, ours, eps)
    accuracy = accuracy_of(models)
    a_ours, a_before = accuracy(ours, y), accuracy(before, y)
    assert 0.0 < a_ours.mean() < 1.0  # a case where the attack breaks some images, not all
    assert torch.equal(a_ours, a_before)


def test_dlr_loss_by_hand():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [1.0, 5.0, 2.0, 0.0]])
    y = torch.tensor([0, 0])
    # right: -(3 - 1) / (3 - 0); wrong: -(1 - 5) / (5 - 1)
    assert torch.allclose(dlr_loss(logits, y), torch.tensor([-2 / 3, 1.0]))


def test_checkpoint_intervals_follow_the_reference_schedule():
    assert checkpoint_intervals(100) == (22, 3, 6)
    assert checkpoint_intervals(10) == (2, 1, 1)


def test_population_outputs_batched_equals_sequential():
    models, x, _ = deterministic_population()
    batched = AttackRuntime(torch.device("cpu"), batched=True)
    assert torch.allclose(population_outputs(models, batched)(x),
                          population_outputs(models, CPU)(x), atol=1e-6)
