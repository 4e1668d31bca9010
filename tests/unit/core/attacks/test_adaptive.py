"""Adaptive attacks on the random-dispatch defence."""

import copy

import pytest
import torch
import torchattacks
from torch import nn

from clmrepro.core.attacks.adaptive import (
    ExpectedLossPGD,
    RandomDispatch,
    adaptive_params,
    craft_adaptive,
    expected_cross_entropy,
)
from clmrepro.core.attacks.kinds import check_perturbation
from clmrepro.core.metrics import per_submodel_accuracy
from clmrepro.core.models import build_model
from clmrepro.core.seeding import generator
from clmrepro.kinds.attacks import get

torch.set_num_threads(1)


class Constant(nn.Module):
    """Always answers class ``k`` (a parameter so torchattacks finds a device)."""

    def __init__(self, k):
        super().__init__()
        self.k = k
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 10) + self.w
        out[:, self.k] = 1.0
        return out


def linear_population(n, seed=0):
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 10)).eval() for _ in range(n)]


def images(n, seed=1):
    g = generator(seed)
    return torch.rand(n, 1, 32, 32, generator=g), torch.randint(10, (n,), generator=g)


def test_random_dispatch_draws_each_sample_uniformly_from_its_own_generator():
    dispatch = RandomDispatch([Constant(k) for k in range(4)], generator(9))
    x = torch.zeros(4000, 1, 2, 2)
    answers = dispatch(x).argmax(1)
    freq = torch.bincount(answers, minlength=4).double() / 4000
    assert torch.all((freq[:4] - 0.25).abs() < 0.03)
    torch.manual_seed(0)
    a = RandomDispatch([Constant(k) for k in range(4)], generator(9))(x).argmax(1)
    torch.manual_seed(1)  # the global RNG does not matter
    b = RandomDispatch([Constant(k) for k in range(4)], generator(9))(x).argmax(1)
    assert torch.equal(a, b) and torch.equal(a, answers)


def test_random_dispatch_passes_gradients_of_the_chosen_submodel():
    models = linear_population(2)
    dispatch = RandomDispatch(models, generator(0))
    x = torch.rand(8, 1, 32, 32, requires_grad=True)
    out = dispatch(x)
    choice = torch.randint(2, (8,), generator=generator(0))
    expected = torch.stack([models[int(c)](x[i:i + 1])[0] for i, c in enumerate(choice)])
    assert torch.allclose(out, expected, atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_expected_loss_is_the_exact_mean_over_submodels():
    models = linear_population(3)
    x, y = images(5)
    want = sum(nn.functional.cross_entropy(m(x), y) for m in models) / 3
    assert expected_cross_entropy(models, x, y).item() == pytest.approx(want.item())


@pytest.mark.parametrize("kind", ["pgd", "fgsm", "mifgsm"])
def test_adaptive_on_identical_population_equals_white_box_attack(kind):
    base = build_model("lenet5", in_channels=1).eval()
    models = [base] + [copy.deepcopy(base) for _ in range(3)]
    x, y = images(12)
    params = {
        "pgd": {"alpha": 0.02, "steps": 5, "random_start": False},
        "fgsm": {},
        "mifgsm": {"alpha": 0.06, "steps": 5, "decay": 1.0},
    }[kind]
    adv = craft_adaptive(models, x, y, kind=get(kind), eps=0.3, params=params, batch_size=5,
                         seed=0, device="cpu")
    white = {
        "pgd": lambda: torchattacks.PGD(base, eps=0.3, alpha=0.02, steps=5, random_start=False),
        "fgsm": lambda: torchattacks.FGSM(base, eps=0.3),
        "mifgsm": lambda: torchattacks.MIFGSM(base, eps=0.3, alpha=0.06, steps=5, decay=1.0),
    }[kind]()(x, y)
    assert torch.allclose(adv, white, atol=1e-5)
    acc_adaptive = per_submodel_accuracy(models, adv, y, batch_size=12, device="cpu")
    acc_white = (base(white).argmax(1) == y).double().mean()
    assert torch.allclose(acc_adaptive, acc_white.expand(4))


def test_adaptive_pgd_random_start_is_seeded_and_legal():
    models = linear_population(3)
    x, y = images(10)
    params = {"alpha": 0.02, "steps": 3, "random_start": True}
    kw = dict(kind=get("pgd"), eps=0.1, params=params, batch_size=4, device="cpu")
    a = craft_adaptive(models, x, y, seed=3, **kw)
    b = craft_adaptive(models, x, y, seed=3, **kw)
    c = craft_adaptive(models, x, y, seed=4, **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    check_perturbation(x, a, 0.1)


def test_expected_loss_pgd_lowers_mean_accuracy_of_a_diverse_population():
    models = linear_population(3, seed=4)
    x, _ = images(60)
    y = models[0](x).argmax(1)
    attack = ExpectedLossPGD(models, eps=0.05, alpha=0.01, steps=10, random_start=False)
    adv = attack(x, y)
    before = per_submodel_accuracy(models, x, y, batch_size=60, device="cpu").mean()
    after = per_submodel_accuracy(models, adv, y, batch_size=60, device="cpu").mean()
    assert after < before


@pytest.mark.parametrize("kind", ["eot-pgd", "autoattack"])
def test_adaptive_eot_and_autoattack_run_on_random_dispatch(kind):
    models = [build_model("lenet5", in_channels=1).eval() for _ in range(2)]
    x, y = images(4)
    params = {
        "eot-pgd": {"alpha": 0.05, "steps": 2, "eot_iter": 2, "random_start": True},
        "autoattack": {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 3,
                       "n_queries": 5, "n_restarts": 1, "eot_iter": 2},
    }[kind]
    adv = craft_adaptive(models, x, y, kind=get(kind), eps=0.3, params=params, batch_size=4,
                         seed=0, device="cpu")
    check_perturbation(x, adv, 0.3)
    again = craft_adaptive(models, x, y, kind=get(kind), eps=0.3, params=params, batch_size=4,
                           seed=0, device="cpu")
    assert torch.equal(adv, again)


def test_adaptive_params_record_what_runs():
    aa = {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 100,
          "n_queries": 5000, "n_restarts": 1, "eot_iter": 20}
    assert adaptive_params(get("autoattack"), 0.3, aa)["version"] == "rand"
    assert adaptive_params(get("fgsm"), 0.3, {}) == {"alpha": 0.3, "steps": 1, "random_start": False}
    pgd = {"alpha": 0.01, "steps": 40, "random_start": True}
    assert adaptive_params(get("pgd"), 0.3, pgd) == pgd
    with pytest.raises(ValueError):
        adaptive_params(get("pgd"), 0.3, {"alpha": 0.01})
