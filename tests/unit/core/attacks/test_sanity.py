"""The evidence of core.attacks.sanity on constructed cases where the answer is known, and
the sanity step's file (the rules that read it: tests/unit/reporting)."""

import json
import math

import pytest
import torch
from torch import nn

from clmrepro.core.attacks.sanity import (PgdSettings, SanitySettings, Target, check_threat,
                                          dlr_loss, normalised_span, traced_pgd)
from clmrepro.core.checkpoints import save_population
from clmrepro.core.models import build_model
from clmrepro.core.per_image import expected_accuracy, unpack
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import generator
from clmrepro.kinds import checks as check_kinds

torch.set_num_threads(1)
CPU = AttackRuntime(torch.device("cpu"))


def settings(checks, *, threats=("adaptive",), steps=4, alpha=0.05, eps=0.3, restarts=2,
             queries=200, random_start=False):
    """A sanity job's settings as steps.sanity builds them from its params."""
    params = {"checks": list(checks), "threat_models": list(threats), "samples": 100,
              "eps": eps, "pgd": {"alpha": alpha, "steps": steps, "random_start": random_start},
              "restarts": restarts, "noise_draws": 3, "square_queries": queries,
              "square_p_init": 0.8,
              "unbounded": {"eps": 1.0, "alpha": 0.1, "steps": 10, "random_start": True}}
    return SanitySettings(jobs=check_kinds.jobs(checks), threat_models=tuple(threats),
                          pgd=PgdSettings(eps, alpha, steps, random_start), params=params,
                          crafting="per-batch", batch_size=8)


def mra(result, name):
    return float(expected_accuracy(unpack(result["attacks"][name]["correct"])).mean())


class Quantised(nn.Module):
    """A linear classifier behind an input quantisation step (4 levels): its input gradient
    is exactly zero almost everywhere (torch.round), the textbook masked gradient."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc((torch.round(x * 3) / 3).flatten(1))


def test_masked_gradients_show_as_zero_gradients_and_a_stronger_square():
    models = [Quantised(0).eval() for _ in range(2)]  # both right on every clean image
    x = torch.rand(16, 1, 8, 8, generator=generator(3))
    y = models[0](x).argmax(1).detach()
    out = check_threat(models, x, y, threat="adaptive", settings=settings(
        ["zero-gradient", "square"], queries=300), seed=0, runtime=CPU)
    # every image right, every gradient zero: both losses, at the clean point and a random start
    by = {"clean": 16, "random": 16}
    assert out["zero_gradient"] == {"losses": ["ce", "dlr"], "points": ["clean", "random"],
                                    "images": 16, "of": 16, "n": 16,
                                    "by": {"ce": by, "dlr": by}}
    # PGD's sign steps are sign(0) = 0: it never leaves the clean images
    assert mra(out, "pgd") == pytest.approx(mra_clean(models, x, y))
    assert mra(out, "square") < mra(out, "pgd") - 0.1


def mra_clean(models, x, y):
    return float(torch.stack([(m(x).argmax(1) == y).double() for m in models]).mean())


def linear_pair(margin_steps):
    """Two identical 1-pixel-per-input linear members whose margin at x = 0.5 is
    ``margin_steps`` sign steps of 0.05 (each step lowers it by 0.05 * 16 = 0.8)."""
    layer = nn.Linear(16, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.stack([torch.ones(16), torch.zeros(16)]))
        layer.bias.copy_(torch.tensor([-8.0 + 0.8 * margin_steps, 0.0]))
    model = nn.Sequential(nn.Flatten(), layer).eval()
    return [model, model]


def test_an_attack_stopped_after_one_small_step_leaves_a_gap_to_twice_the_steps():
    models = linear_pair(1.5)  # one step leaves the margin at +0.4, two cross the boundary
    x, y = torch.full((4, 1, 4, 4), 0.5), torch.zeros(4, dtype=torch.long)
    out = check_threat(models, x, y, threat="adaptive", settings=settings(
        ["convergence"], steps=1), seed=0, runtime=CPU)
    assert mra(out, "pgd") == 1.0 and mra(out, "pgd-2x-steps") == 0.0
    # the trace of one step: the loss still rose at the end (span 1 of the scaled trace)
    assert out["trace"]["span_last10"] == [1.0] * 4
    assert out["attacks"]["pgd-restarts"]["params"]["restarts"] == 2


class Wavy(nn.Module):
    """One pixel; class 0's logit is cos(4π (x - 0.1) + 0.1π): PGD with steps of 0.2 from
    x = 0.1 (cos 0.1π > 0, correct) crosses into class 1 after one step (cos 0.9π < 0) and,
    still climbing the loss, back out after two (cos 1.7π > 0)."""

    def forward(self, x):
        z = torch.cos(4 * math.pi * (x.flatten(1)[:, :1] - 0.1) + 0.1 * math.pi)
        return torch.cat([z, torch.zeros_like(z)], dim=1)


def test_a_path_adversarial_midway_is_a_silent_success():
    target = Target([Wavy()], CPU)
    x, y = torch.full((3, 1, 1, 1), 0.1), torch.zeros(3, dtype=torch.long)
    run = traced_pgd(target, x, y, PgdSettings(0.5, 0.2, 2, False), generator(0))
    assert run.measure[:, 0].tolist() == [1.0, 0.0, 1.0]  # correct, fooled, correct again
    out = check_threat([Wavy()], x, y, threat="adaptive", settings=settings(
        ["silent-success"], steps=2, alpha=0.2, eps=0.5), seed=0, runtime=CPU)
    assert out["trace"]["path_best"] == [0.0] * 3 and out["trace"]["final"] == [1.0] * 3


def test_normalised_span_and_dlr():
    flat = torch.tensor([[0.0], [1.0], [2.0]] + [[2.0]] * 11)  # rises, then flat for 11 steps
    rising = torch.arange(14.0).unsqueeze(1)
    assert normalised_span(flat).tolist() == [0.0]
    assert normalised_span(rising).item() == pytest.approx(10 / 13)
    logits = torch.tensor([[3.0, 1.0, 0.0], [1.0, 3.0, 0.0]])
    # true class 0: -(3 - 1) / (3 - 0); true class 0 but 1 wins: -(1 - 3) / (3 - 0)
    assert dlr_loss(logits, torch.tensor([0, 0])).tolist() == pytest.approx([-2 / 3, 2 / 3])


def test_every_check_on_a_lenet5_population_and_both_threat_models():
    torch.manual_seed(0)
    models = [build_model("lenet5", in_channels=1).eval() for _ in range(3)]
    x = torch.rand(10, 1, 32, 32, generator=generator(1))
    y = models[0](x).argmax(1).detach()
    every = ["convergence", "unbounded", "square", "zero-gradient", "silent-success", "noise"]
    crafters = torch.tensor([0] * 8 + [2] * 2)
    for threat in ("paper", "adaptive"):
        out = check_threat(models, x, y, threat=threat, seed=1, runtime=CPU, crafters=crafters,
                           settings=settings(every, threats=(threat,), queries=20,
                                             random_start=True))
        names = {"pgd", "pgd-2x-steps", "pgd-restarts", "square", "noise"}
        assert set(out["attacks"]) == names | ({"pgd-unbounded"} if threat == "adaptive" else set())
        for result in out["attacks"].values():
            assert unpack(result["correct"]).shape == (3, 10)
        assert len(out["trace"]["span_last10"]) == 10
        assert all(b <= f for b, f in zip(out["trace"]["path_best"], out["trace"]["final"]))
        # the images the target classifies correctly: all (adaptive: member 0 is right on
        # every image), those whose crafting submodel is right (paper)
        right = [bool(models[int(c)](x[i:i + 1]).argmax(1) == y[i]) for i, c in
                 enumerate(crafters)]
        expected = 10 if threat == "adaptive" else sum(right)
        assert out["zero_gradient"]["of"] == expected and out["zero_gradient"]["n"] == 10


def test_the_sanity_step_writes_its_file(tmp_path):
    from clmrepro.steps.sanity import run_sanity

    torch.manual_seed(0)
    models = [build_model("lenet5", in_channels=3).eval() for _ in range(2)]
    population = tmp_path / "population.pt"
    save_population(population, models, {"architecture": "lenet5", "regime": "ulm", "size": 2,
                                         "in_channels": 3, "num_classes": 10,
                                         "dataset": "fake-cifar10"})
    sanity = {"checks": ["convergence", "noise"], "threat_models": ["paper", "adaptive"],
              "samples": 6, "eps": 8 / 255,
              "pgd": {"alpha": 2 / 255, "steps": 2, "random_start": True}, "restarts": 2,
              "noise_draws": 2, "square_queries": 10, "square_p_init": 0.8,
              "unbounded": {"eps": 1.0, "alpha": 0.05, "steps": 2, "random_start": True}}
    job = {"id": "sanity-cifar-ulm", "stage": "sanity", "spec": "t", "experiment": "cifar",
           "seed": 3, "threads": 1, "device": "cpu", "gpu": False,
           "inputs": {"population": str(population)},
           "outputs": {"sanity": str(tmp_path / "sanity.json")},
           "params": {"dataset": {"name": "fake-cifar10", "root": "data", "n_train": 0,
                                  "n_test": 6, "split_seed": 0},
                      "architecture": "lenet5", "population": {"id": "ulm", "regime": "ulm",
                                                               "size": 2, "from": None},
                      "threat_models": ["paper", "adaptive"], "crafting": "per-batch",
                      "n_samples": 6, "batch_size": 4, "replicate": 0, "sanity": sanity}}
    run_sanity(job)
    blob = json.loads((tmp_path / "sanity.json").read_text())
    assert (blob["experiment"], blob["population"], blob["replicate"], blob["n_samples"]) == (
        "cifar", "ulm", 0, 6)
    assert set(blob["threat_models"]) == {"paper", "adaptive"}
    assert set(blob["threat_models"]["paper"]["attacks"]) == {"pgd", "pgd-2x-steps",
                                                              "pgd-restarts", "noise"}
    assert len(blob["crafter"]) == 6 and len(set(blob["crafter"][:4])) == 1  # per batch of 4
    # clmrepro plan sizes this file from the job alone (plan.storage.sanity_file)
    from clmrepro.plan.jsonsize import file_bytes
    from clmrepro.plan.storage import sanity_file

    written = (tmp_path / "sanity.json").stat().st_size
    assert abs(file_bytes(sanity_file(job)) - written) < 0.05 * written
