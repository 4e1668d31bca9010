"""Attacks run until they converge (issue 26 item 2; core.attacks.ladder).

The ladder is cheap because PGD with a fixed step continued from its own iterate after s
steps for s more steps IS PGD with 2s steps from the same random start: checked bit for bit
on CPU for the three executors.  Then the ladder's stopping rule (converged / capped), on a
tiny model and on constructed MRAs.
"""

import pytest
import torch
from torch import nn

from clmrepro.core.attacks.adaptive import AdaptiveExecutor
from clmrepro.core.attacks.batched import BatchedExecutor
from clmrepro.core.attacks.ladder import climb
from clmrepro.core.attacks.threats import craft_sets
from clmrepro.core.attacks.work import adaptive_units, chunked, paper_units, transfer_units
from clmrepro.core.models import LeNet5
from clmrepro.core.runtime import AttackRuntime
from clmrepro.kinds.attacks import get, pgd

torch.set_num_threads(1)
CPU = torch.device("cpu")
PGD = get("pgd")


def population(n=3):
    torch.manual_seed(0)
    return [LeNet5(in_channels=1).eval() for _ in range(n)]


def data(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.rand((n, 1, 32, 32), generator=g), torch.randint(10, (n,), generator=g)


def params(steps):
    return {"alpha": 0.02, "steps": steps, "random_start": True}


def executor(name, models, x, y, steps):
    if name == "batched":
        return BatchedExecutor(models, x, y, kind=PGD, eps=0.1, params=params(steps),
                               runtime=AttackRuntime(CPU, batched=True))
    if name.startswith("adaptive"):   # expected-loss PGD, n forwards or one stacked call
        return AdaptiveExecutor(models, x, y, kind=PGD, eps=0.1, params=params(steps),
                                runtime=AttackRuntime(CPU, batched=name.endswith("batched")))
    from clmrepro.core.attacks.sequential import SequentialExecutor

    return SequentialExecutor(models, x, y, kind=PGD, eps=0.1, params=params(steps), device=CPU)


@pytest.mark.parametrize("name", ["batched", "sequential", "adaptive", "adaptive-batched"])
def test_continuing_pgd_for_s_steps_is_pgd_with_2s_steps_bit_for_bit(name):
    models = population()
    x, y = data()
    if name.startswith("adaptive"):
        units = adaptive_units(len(x), batch_size=4, seed=5)
    else:
        units = transfer_units(len(models), len(x), batch_size=4, seed=5)
    short, long = executor(name, models, x, y, 3), executor(name, models, x, y, 6)
    for chunk in chunked(units, short.units_per_call):
        after_3 = short(chunk)
        continued = short.continue_from(chunk, after_3, 3)
        fresh = long(chunk)
        for c, f, a in zip(continued, fresh, after_3, strict=True):
            assert not torch.equal(a, f)            # the 3 further steps did move the iterate
            assert c.numpy().tobytes() == f.numpy().tobytes()


def ladder_of(measures, rungs=(40, 80, 160, 320, 640), tolerance=0.5):
    """climb() with a constructed MRA per rung (no attack: the continuation is a no-op)."""
    values = iter(measures)

    class Same:
        units_per_call = 1

        def continue_from(self, chunk, starts, steps):
            return starts

    run = lambda name, chunks, execute: [execute(c) for c in chunks]  # noqa: E731
    chunks = [[object()]]
    _, record = climb("paper", chunks, [[torch.zeros(1)]], Same(), rungs=list(rungs),
                      tolerance=tolerance, measure=lambda r: next(values), run=run)
    return record


def test_the_ladder_stops_once_the_move_is_below_the_tolerance():
    record = ladder_of([0.30, 0.25, 0.247, 0.1])
    assert record == {"ladder": [[40, 0.30], [80, 0.25], [160, 0.247]], "converged": True}


def test_a_ladder_that_reaches_its_cap_is_not_converged():
    record = ladder_of([0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert [r[0] for r in record["ladder"]] == [40, 80, 160, 320, 640]
    assert record["converged"] is False


def test_a_move_at_the_cap_below_the_tolerance_converges():
    assert ladder_of([0.5, 0.4, 0.3, 0.2, 0.199])["converged"] is True


class Linear(nn.Module):
    """A tiny model PGD breaks within a few steps: the logit of class 0 is the pixel mean."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(20.0))

    def forward(self, x):
        m = x.flatten(1).mean(1, keepdim=True)
        return torch.cat([self.scale * (m - 0.5), self.scale * (0.5 - m)], dim=1)


@pytest.mark.parametrize("batched", [False, True])
def test_craft_sets_climbs_until_the_mra_stops_moving(batched):
    models = [Linear().eval() for _ in range(2)]
    x = torch.full((8, 1, 4, 4), 0.53)
    y = torch.zeros(8, dtype=torch.long)  # all right on the clean images (mean 0.53 > 0.5)
    attack = {"kind": "pgd", "eps": 0.2,
              "params": {**params(1), "random_start": False,
                         "converge": {"tolerance": 0.5, "max_steps": 64}}}
    calls = []

    def measure(threat, x_adv):
        calls.append(threat)
        return float((x_adv.flatten(1).mean(1) > 0.5).double().mean())

    sets = craft_sets(models, x, y, kind=PGD, attack=attack, threat_models=["paper", "adaptive"],
                      sizes={"paper": 8, "adaptive": 8}, crafting="per-batch", batch_size=4,
                      seed=0, runtime=AttackRuntime(CPU, batched=batched), measure=measure)
    # 0.02 per step from 0.53: right after 1 step (0.51), broken after 2 (0.49) and 4 (0.45):
    # the move from 2 to 4 steps is 0 < 0.5 points, so the ladder stops far below its cap
    for threat in ("paper", "adaptive"):
        assert sets[threat]["ladder"] == [[1, 1.0], [2, 0.0], [4, 0.0]]
        assert sets[threat]["converged"] is True
        # the scored set is the last rung's iterate: 0.53 − 0.02 × 4
        assert torch.allclose(sets[threat]["x_adv"], torch.full_like(x, 0.45))
    assert calls == ["paper"] * 3 + ["adaptive"] * 3


def test_without_converge_the_sets_have_no_ladder():
    models = [Linear().eval()]
    x, y = torch.full((4, 1, 4, 4), 0.55), torch.zeros(4, dtype=torch.long)
    sets = craft_sets(models, x, y, kind=PGD, attack={"kind": "pgd", "eps": 0.2,
                                                      "params": params(2)},
                      threat_models=["paper"], sizes={"paper": 4}, crafting="per-batch",
                      batch_size=4, seed=0, runtime=AttackRuntime(CPU))
    assert set(sets["paper"]) == {"x_adv", "crafter", "crafting"}


def test_the_kind_prices_the_ladder_at_its_last_rung():
    converge = {"tolerance": 0.5, "max_steps": 640}
    assert pgd.ladder_steps({"steps": 40, "converge": converge}) == [40, 80, 160, 320, 640]
    assert pgd.ladder_steps({"steps": 40, "converge": {**converge, "max_steps": 600}})[-1] == 320
    assert pgd.gradient_steps({"steps": 40, "converge": converge}) == 640
    assert pgd.gradient_steps({"steps": 40}) == 40
    spec = pgd.Spec(kind="pgd", eps=[0.3])
    assert "converge" not in pgd.params(spec, 0.3, 0.01)   # job files as before the knob
    spec = pgd.Spec(kind="pgd", eps=[0.3], converge={"tolerance": 0.5, "max_steps": 640})
    assert pgd.params(spec, 0.3, 0.01)["converge"] == converge
