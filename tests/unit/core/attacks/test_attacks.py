"""Attacks: parameters reach torchattacks, perturbations stay legal, eq. 6 crafting."""

import copy

import pytest
import torch
import torchattacks
from torch import nn
from torchattacks.attack import Attack

from clmrepro.core.attacks.executors import craft_paper, craft_transfer
from clmrepro.core.attacks.kinds import PerturbationError, check_params, check_perturbation
from clmrepro.core.attacks.sequential import build_attack
from clmrepro.core.attacks.work import assign_crafters
from clmrepro.core.metrics import per_submodel_accuracy, transfer_matrix
from clmrepro.core.models import build_model
from clmrepro.core.seeding import generator
from clmrepro.kinds.attacks import MODULES, get

torch.set_num_threads(1)

# the paper's torchattacks attacks (a new kind brings its own tests: tests/unit/kinds/attacks)
TORCHATTACKS_KINDS = ("fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd")

SMALL = {
    "fgsm": {},
    "pgd": {"alpha": 0.05, "steps": 3, "random_start": True},
    "mifgsm": {"alpha": 0.06, "steps": 3, "decay": 1.0},
    "eot-pgd": {"alpha": 0.05, "steps": 2, "eot_iter": 2, "random_start": True},
    "autoattack": {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 10,
                   "n_queries": 5, "n_restarts": 1, "eot_iter": 1},
}


def linear_population(n, seed=0, channels=1):
    torch.manual_seed(seed)
    models = [nn.Sequential(nn.Flatten(), nn.Linear(channels * 32 * 32, 10)) for _ in range(n)]
    return [m.eval() for m in models]


def images(n, channels=1, seed=1):
    g = generator(seed)
    return torch.rand(n, channels, 32, 32, generator=g), torch.randint(10, (n,), generator=g)


# --- parameters reach torchattacks -------------------------------------------------------

def test_a_kind_given_by_name_is_refused():
    with pytest.raises(TypeError, match="kinds.attacks.get"):
        check_params("pgd", {"alpha": 0.01, "steps": 1, "random_start": True})


def test_pgd_mifgsm_eotpgd_fgsm_attributes_are_the_given_ones():
    model = linear_population(1)[0]
    a = build_attack(get("pgd"), model, 0.123, {"alpha": 0.017, "steps": 7, "random_start": False})
    assert (a.eps, a.alpha, a.steps, a.random_start) == (0.123, 0.017, 7, False)
    a = build_attack(get("mifgsm"), model, 0.2, {"alpha": 0.04, "steps": 5, "decay": 0.7})
    assert (a.eps, a.alpha, a.steps, a.decay) == (0.2, 0.04, 5, 0.7)
    a = build_attack(get("eot-pgd"), model, 0.1,
                     {"alpha": 0.003, "steps": 11, "eot_iter": 3, "random_start": False})
    assert (a.eps, a.alpha, a.steps, a.eot_iter, a.random_start) == (0.1, 0.003, 11, 3, False)
    assert isinstance(a, torchattacks.EOTPGD)
    a = build_attack(get("fgsm"), model, 0.31, {})
    assert isinstance(a, torchattacks.FGSM) and a.eps == 0.31


def test_autoattack_standard_sub_attacks_get_explicit_steps():
    model = linear_population(1)[0]
    params = {"version": "standard", "norm": "Linf", "n_classes": 7, "steps": 37,
              "n_queries": 123, "n_restarts": 2, "eot_iter": 20}
    a = build_attack(get("autoattack"), model, 0.25, params)
    apgd, apgdt, fab, square = a.attacks
    assert type(apgd) is torchattacks.APGD and apgd.loss == "ce"
    assert type(apgdt) is torchattacks.APGDT and type(fab) is torchattacks.FAB
    assert type(square) is torchattacks.Square
    assert apgd.steps == apgdt.steps == fab.steps == 37
    assert apgd.n_restarts == apgdt.n_restarts == fab.n_restarts == square.n_restarts == 2
    assert apgd.eot_iter == apgdt.eot_iter == 1  # standard targets deterministic models
    assert apgdt.n_target_classes == fab.n_target_classes == 6
    assert fab.multi_targeted is True
    assert square.n_queries == 123
    assert all(s.eps == 0.25 and s.norm == "Linf" for s in a.attacks)


def test_autoattack_rand_is_apgd_ce_and_dlr_with_eot():
    model = linear_population(1)[0]
    params = {"version": "rand", "norm": "Linf", "n_classes": 10, "steps": 13,
              "n_queries": 1, "n_restarts": 3, "eot_iter": 4}
    a = build_attack(get("autoattack"), model, 0.1, params)
    assert [type(s) for s in a.attacks] == [torchattacks.APGD, torchattacks.APGD]
    assert [s.loss for s in a.attacks] == ["ce", "dlr"]
    assert all((s.steps, s.n_restarts, s.eot_iter) == (13, 3, 4) for s in a.attacks)


def test_every_attack_kind_is_a_torchattacks_attack_or_adaptive_only():
    assert all((kind.build is None) == kind.ADAPTIVE_ONLY for kind in MODULES)
    arc = {"steps": 2, "step_size": 0.1, "candidates": "all", "topk": None, "rho": 0.05,
           "start": "clean", "start_steps": 1, "start_alpha": 0.01, "start_random_start": False}
    check_params(get("arc"), arc)
    with pytest.raises(ValueError, match="missing"):
        check_params(get("arc"), {k: v for k, v in arc.items() if k != "rho"})
    with pytest.raises(ValueError, match="not a torchattacks attack"):
        build_attack(get("arc"), linear_population(1)[0], 0.1, arc)


@pytest.mark.parametrize("kind", TORCHATTACKS_KINDS)
def test_build_attack_rejects_missing_or_unknown_keys(kind):
    model = linear_population(1)[0]
    with pytest.raises(ValueError, match="unknown"):
        build_attack(get(kind), model, 0.1, {**SMALL[kind], "stepz": 3})
    for key in SMALL[kind]:
        partial = {k: v for k, v in SMALL[kind].items() if k != key}
        with pytest.raises(ValueError, match="missing"):
            build_attack(get(kind), model, 0.1, partial)


def test_build_attack_rejects_bad_kind_eps_and_norm():
    model = linear_population(1)[0]
    with pytest.raises(ValueError):
        build_attack(get("cw"), model, 0.1, {})
    with pytest.raises(ValueError):
        build_attack(get("fgsm"), model, 0.0, {})
    with pytest.raises(ValueError):
        build_attack(get("autoattack"), model, 0.1, {**SMALL["autoattack"], "norm": "L2"})


# --- legality of every adversarial batch -------------------------------------------------

def test_check_perturbation_catches_violations():
    x = torch.full((2, 1, 4, 4), 0.5)
    check_perturbation(x, x + 0.1, 0.1)
    with pytest.raises(PerturbationError, match="exceeds"):
        check_perturbation(x, x + 0.1001, 0.1)
    with pytest.raises(PerturbationError, match="outside"):
        check_perturbation(x, x - 0.6, 0.7)
    with pytest.raises(PerturbationError):
        check_perturbation(x, x * float("nan"), 0.1)


@pytest.mark.parametrize("kind", TORCHATTACKS_KINDS)  # ARC: tests/unit/core/attacks/test_arc.py
def test_every_attack_stays_in_ball_and_range_on_lenet5(kind):
    torch.manual_seed(0)
    model = build_model("lenet5", in_channels=1).eval()
    x, _ = images(6)
    y = model(x).argmax(1)  # all correct, so AutoAttack has every point to attack
    adv = build_attack(get(kind), model, 0.3, SMALL[kind])(x, y).detach()
    check_perturbation(x, adv, 0.3)
    assert not torch.equal(adv, x)


@pytest.mark.parametrize("kind", TORCHATTACKS_KINDS)
def test_every_attack_stays_in_ball_and_range_on_resnet18(kind):
    torch.manual_seed(0)
    model = build_model("resnet18", in_channels=3).eval()
    x, _ = images(2, channels=3)
    y = model(x).argmax(1)
    eps = 8 / 255
    params = dict(SMALL[kind])
    if "alpha" in params:
        params["alpha"] = 2 / 255
    adv = build_attack(get(kind), model, eps, params)(x, y).detach()
    check_perturbation(x, adv, eps)
    assert not torch.equal(adv, x)


# --- crafting protocol (eq. 6) ------------------------------------------------------------

def test_assign_crafters_per_batch_and_per_sample():
    c = assign_crafters(250, 4, mode="per-batch", batch_size=100, gen=generator(3))
    assert c.shape == (250,)
    for start in (0, 100, 200):
        assert len(set(c[start:start + 100].tolist())) == 1
    c2 = assign_crafters(250, 4, mode="per-batch", batch_size=100, gen=generator(3))
    assert torch.equal(c, c2)
    s = assign_crafters(4000, 4, mode="per-sample", batch_size=100, gen=generator(3))
    counts = torch.bincount(s, minlength=4).double() / 4000
    assert torch.all((counts - 0.25).abs() < 0.03)  # uniform over submodels
    assert len(set(s[:100].tolist())) == 4
    with pytest.raises(ValueError):
        assign_crafters(10, 2, mode="per-epoch", batch_size=5, gen=generator(0))


@pytest.mark.parametrize("mode", ["per-batch", "per-sample"])
def test_paper_crafting_follows_eq6(mode):
    models = linear_population(3)
    x, y = images(40)
    crafters = assign_crafters(40, 3, mode=mode, batch_size=8, gen=generator(5))
    x_adv = craft_paper(models, x, y, kind=get("fgsm"), eps=0.1, params={}, crafters=crafters,
                        batch_size=8, seed=1, device="cpu")
    # each sample x'_j is the attack of its crafting submodel m_{c_j} on x_j
    by_crafter = torch.stack([torchattacks.FGSM(m, eps=0.1)(x, y) for m in models])
    assert torch.allclose(x_adv, by_crafter[crafters, torch.arange(40)], atol=1e-6)
    # MRA = (1/n) sum_i (1/N) sum_j rho(m_i, x'_j)
    rho = torch.stack([(m(x_adv).argmax(1) == y).double() for m in models])
    per = per_submodel_accuracy(models, x_adv, y, batch_size=7, device="cpu")
    assert torch.allclose(per, rho.mean(1))


def test_paper_crafting_is_deterministic_with_random_start():
    models = linear_population(2)
    x, y = images(10)
    crafters = assign_crafters(10, 2, mode="per-sample", batch_size=4, gen=generator(5))
    kw = dict(kind=get("pgd"), eps=0.1, params=SMALL["pgd"], crafters=crafters, batch_size=4,
              device="cpu")
    a = craft_paper(models, x, y, seed=7, **kw)
    torch.manual_seed(123)  # the global state before the call must not matter
    b = craft_paper(models, x, y, seed=7, **kw)
    c = craft_paper(models, x, y, seed=8, **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_transfer_diagonal_is_white_box_accuracy():
    models = linear_population(3)
    x, y = images(30)
    params = {"alpha": 0.02, "steps": 4, "random_start": False}
    sets = craft_transfer(models, x, y, kind=get("pgd"), eps=0.08, params=params, batch_size=16,
                          seed=0, device="cpu")
    assert sets.shape == (3, *x.shape)
    m = transfer_matrix(models, sets, y, batch_size=16, device="cpu")
    for i, model in enumerate(models):
        white = torchattacks.PGD(model, eps=0.08, alpha=0.02, steps=4, random_start=False)(x, y)
        acc = (model(white).argmax(1) == y).double().mean().item()
        assert m[i, i].item() == pytest.approx(acc)
    # identical crafters make identical rows
    twins = [models[0], copy.deepcopy(models[0])]
    sets = craft_transfer(twins, x, y, kind=get("pgd"), eps=0.08, params=params, batch_size=16,
                          seed=0, device="cpu")
    assert torch.allclose(sets[0], sets[1])


def test_craft_paper_builds_one_attack_per_crafting_submodel(monkeypatch):
    import clmrepro.core.attacks.sequential as attacks

    built = []
    real = attacks.build_attack

    def counting(kind, model, eps, params):
        built.append(id(model))
        return real(kind, model, eps, params)

    monkeypatch.setattr(attacks, "build_attack", counting)
    models = linear_population(3)
    x, y = images(24)
    crafters = torch.tensor([0, 2] * 12)  # submodel 1 crafts nothing
    craft_paper(models, x, y, kind=get("fgsm"), eps=0.1, params={}, crafters=crafters,
                batch_size=5, seed=0, device="cpu")
    assert built == [id(models[0]), id(models[2])]


def test_crafting_rejects_an_attack_that_leaves_the_ball(monkeypatch):
    import clmrepro.core.attacks.sequential as attacks

    class Cheat(Attack):
        def __init__(self, model):
            super().__init__("Cheat", model)

        def forward(self, images, labels):
            return (images + 0.5).clamp(0, 1)

    monkeypatch.setattr(attacks, "build_attack", lambda kind, model, eps, params: Cheat(model))
    models = linear_population(2)
    x, y = images(4)
    with pytest.raises(PerturbationError):
        craft_transfer(models, x, y, kind=get("fgsm"), eps=0.1, params={}, batch_size=2, seed=0,
                       device="cpu")
