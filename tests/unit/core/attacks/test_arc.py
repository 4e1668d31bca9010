"""ARC (core.attacks.arc) and the adaptive AutoAttack cascade judged on expected accuracy."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clmrepro.core.attacks.adaptive import (ExpectedAccuracyCascade, ExpectedLossPGD,
                                            adaptive_params, craft_adaptive)
from clmrepro.core.attacks.arc import ARC, closest_boundary, expected_accuracy_of
from clmrepro.core.attacks.kinds import check_perturbation
from clmrepro.core.metrics import population_classifier
from clmrepro.core.models import LeNet5
from clmrepro.core.seeding import derive_seed, generator
from clmrepro.kinds.attacks import get

ARC_PARAMS = {"steps": 10, "step_size": 0.3, "candidates": "all", "topk": None, "rho": 0.05,
              "start": "clean", "start_steps": 5, "start_alpha": 0.05,
              "start_random_start": False}


def linear_member(weight, bias):
    """Two pixels in, two classes out: logits [w . x + b, 0] (class 0 wins when w . x > -b)."""
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight, [0.0, 0.0]]))
        layer.bias.copy_(torch.tensor([bias, 0.0]))
    return nn.Sequential(nn.Flatten(), layer).eval()


def mirrored_pair():
    """Dbouk & Shanbhag's inconsistency case: two linear members whose margins at x0 = (1/2,
    1/2) are equal, 1/4, with opposite gradients.  Their cross-entropy gradients cancel
    exactly in the mean (every number is a power of two), so expected-loss PGD without a
    random start never moves; moving 0.3 against member A's gradient fools A (margin
    0.5 * (x1 + x2) - 0.25 < 0 needs x1 + x2 < 1/2) and not B, so the lowest expected
    accuracy reachable is 1/2."""
    a = linear_member([0.5, 0.5], -0.25)
    b = linear_member([-0.5, -0.5], 0.75)
    x = torch.full((3, 1, 1, 2), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    return [a, b], x, y


def test_arc_breaks_a_population_where_expected_loss_pgd_cannot_move():
    models, x, y = mirrored_pair()
    accuracy = expected_accuracy_of(population_classifier(models))
    assert accuracy(x, y).tolist() == [1.0] * 3
    loss_x = x.clone().requires_grad_(True)
    mean_loss = torch.stack([F.cross_entropy(m(loss_x), y) for m in models]).mean()
    assert torch.equal(torch.autograd.grad(mean_loss, loss_x)[0], torch.zeros_like(x))
    pgd = ExpectedLossPGD(models, eps=0.3, alpha=0.05, steps=20, random_start=False)
    stuck = pgd(x, y)
    assert torch.equal(stuck, x) and accuracy(stuck, y).tolist() == [1.0] * 3
    for start in ("clean", "pgd"):
        arc = ARC(models, eps=0.3, steps=5, step_size=0.3, candidates="all", topk=None,
                  rho_fraction=0.05, start=start, accuracy=accuracy, start_attack=pgd)
        adv = arc(x, y)
        check_perturbation(x, adv, 0.3)
        assert accuracy(adv, y).tolist() == [0.5] * 3, start


def test_closest_boundary_matches_a_brute_force_search():
    torch.manual_seed(0)
    model = LeNet5().eval()
    x = torch.rand(6, 1, 32, 32, generator=generator(4))
    for candidates, topk in (("all", None), ("topk", 3)):
        g, g2, zeta = closest_boundary(model, x, candidates=candidates, topk=topk)
        leaf = x.clone().requires_grad_(True)
        out = model(leaf)
        for b in range(len(x)):
            ranked = out[b].argsort(descending=True).tolist()
            top = ranked[0]
            others = ([j for j in range(10) if j != top] if candidates == "all"
                      else ranked[1:topk])
            best = None
            for j in others:
                w = (torch.autograd.grad(out[b, top], leaf, retain_graph=True)[0][b]
                     - torch.autograd.grad(out[b, j], leaf, retain_graph=True)[0][b])
                distance = (out[b, top] - out[b, j]).abs().item() / (w.abs().sum().item() + 1e-10)
                if best is None or distance < best[0]:
                    best = (distance, w)
            assert zeta[b].item() == pytest.approx(best[0], rel=1e-4)
            assert torch.equal(g[b], -torch.sign(best[1]))
            assert torch.allclose(g2[b], -best[1] / best[1].abs().sum(), atol=1e-6)


@pytest.mark.parametrize("architecture,channels,eps", [("lenet5", 1, 0.3),
                                                       ("resnet18", 3, 8 / 255)])
def test_arc_stays_in_the_ball_on_both_architectures(architecture, channels, eps):
    from clmrepro.core.models import build_model

    torch.manual_seed(0)
    models = [build_model(architecture, in_channels=channels).eval() for _ in range(2)]
    x = torch.rand(3, channels, 32, 32, generator=generator(2))
    y = models[0](x).argmax(1).detach()
    params = {**ARC_PARAMS, "steps": 2, "step_size": eps, "candidates": "topk", "topk": 3}
    adv = craft_adaptive(models, x, y, kind=get("arc"), eps=eps, params=params, batch_size=3,
                         seed=1, device="cpu")
    check_perturbation(x, adv, eps)
    assert not torch.equal(adv, x)


def test_topk_must_name_at_least_two_classes():
    model = LeNet5().eval()
    with pytest.raises(ValueError, match="topk must be from 2 to 10"):
        closest_boundary(model, torch.rand(2, 1, 32, 32), candidates="topk", topk=1)
    with pytest.raises(ValueError, match="candidates must be one of"):
        closest_boundary(model, torch.rand(2, 1, 32, 32), candidates="some")


@pytest.fixture(scope="module")
def trained():
    """Three LeNet5s trained briefly on 2,000 real digits: attacks have work to do."""
    from clmrepro.core.data import load_dataset, test_tensors, to_unit

    data = load_dataset("mnist-5k", n_train=2000, n_test=40)
    x_train, y_train = to_unit(data.x_train), data.y_train
    models = []
    for k in range(3):
        torch.manual_seed(derive_seed(5, k))
        model = LeNet5()
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        order = torch.randperm(len(y_train), generator=generator(k))
        for start in range(0, len(y_train), 50):
            idx = order[start:start + 50]
            opt.zero_grad()
            F.nll_loss(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
        models.append(model.eval())
    return models, *test_tensors(data, 40)


def test_arc_never_ends_above_the_pgd_it_starts_from(trained):
    models, x, y = trained
    accuracy = expected_accuracy_of(population_classifier(models))
    assert accuracy(x, y).mean() > 0.7
    pgd = ExpectedLossPGD(models, eps=0.15, alpha=0.02, steps=4, random_start=True)
    started = pgd(x, y, generator(3))
    arc = ARC(models, eps=0.15, steps=3, step_size=0.15, candidates="topk", topk=3,
              rho_fraction=0.05, start="pgd", accuracy=accuracy, start_attack=pgd)
    adv = arc(x, y, generator(3))
    check_perturbation(x, adv, 0.15)
    before, after = accuracy(started, y), accuracy(adv, y)
    assert (after <= before).all()
    assert after.mean() < before.mean()  # and it found something PGD had not


def test_arc_as_an_adaptive_attack_is_deterministic_and_recorded(trained):
    models, x, y = trained
    kw = dict(kind=get("arc"), eps=0.15, params={**ARC_PARAMS, "steps": 2, "start": "pgd",
                                             "start_random_start": True},
              batch_size=16, seed=7, device="cpu")
    a = craft_adaptive(models, x[:20], y[:20], **kw)
    b = craft_adaptive(models, x[:20], y[:20], **kw)
    assert torch.equal(a, b)
    check_perturbation(x[:20], a, 0.15)
    assert adaptive_params(get("arc"), 0.15, ARC_PARAMS) == ARC_PARAMS


class _SetsPixel:
    """A stand-in sub-attack: writes fixed values into pixel 0 (the test's 'accuracy')."""

    def __init__(self, values):
        self.values, self.calls = values, []

    def __call__(self, x, y):
        self.calls.append(x[:, 0, 0, 0].tolist())
        out = x.clone()
        out[:, 0, 0, 0] = torch.tensor([self.values[int(i)] for i in y])
        return out


def test_cascade_keeps_the_lowest_expected_accuracy_and_attacks_what_is_left():
    """Pixel 0 stands for the expected accuracy.  Sub-attack 1 brings every point to 1/2
    (one lucky draw would have called that a success); sub-attack 2 still runs on all of
    them (from their clean images), helps point 0 and not point 1, which keeps the first
    result."""
    x = torch.ones(3, 1, 2, 2)
    x[2, 0, 0, 0] = 0.0  # already wrong for every submodel: attacked no further
    y = torch.arange(3)
    first, second = _SetsPixel([0.5, 0.5, 0.5]), _SetsPixel([0.25, 0.75, 0.0])
    cascade = ExpectedAccuracyCascade([first, second], lambda xb, yb: xb[:, 0, 0, 0].double())
    out = cascade(x, y, seed=0)
    assert out[:, 0, 0, 0].tolist() == [0.25, 0.5, 0.0]
    # every sub-attack starts from the clean images, as in AutoAttack
    assert first.calls == [[1.0, 1.0]] and second.calls == [[1.0, 1.0]]
    assert adaptive_params(get("autoattack"), 0.3, {
        "version": "standard", "norm": "Linf", "n_classes": 10, "steps": 2, "n_queries": 5,
        "n_restarts": 1, "eot_iter": 2})["success"] == "expected-accuracy"
