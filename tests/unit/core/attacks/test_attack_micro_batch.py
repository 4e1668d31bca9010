"""execution.max_models for attacks (issue 30): a batched attack crafted with fewer
submodels per call gives the same sets (every unit keeps its images and seed)."""

import pytest
import torch

from clmrepro.core.attacks.batched import BatchedExecutor
from clmrepro.core.attacks.executors import craft_paper, craft_transfer
from clmrepro.core.attacks.work import assign_crafters
from clmrepro.core.models import LeNet5
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import generator
from clmrepro.kinds.attacks import get

pytestmark = pytest.mark.numerics
torch.set_num_threads(1)
CPU = torch.device("cpu")
PGD = {"alpha": 0.02, "steps": 3, "random_start": True}


def population(n=3):
    torch.manual_seed(0)
    return [LeNet5(in_channels=1).eval().double() for _ in range(n)]


def test_runtime_reads_max_models_from_the_job():
    assert AttackRuntime.from_execution({"max_models": 2}, "cpu").max_models == 2
    assert AttackRuntime.from_execution({}, "cpu").max_models is None
    with pytest.raises(ValueError, match="max_models"):
        AttackRuntime.from_execution({"max_models": 0}, "cpu")


def test_fewer_submodels_per_call_craft_the_same_sets():
    models = population()
    x = torch.rand(10, 1, 32, 32, generator=generator(1), dtype=torch.float64)
    y = torch.randint(0, 10, (10,), generator=generator(2))
    whole = AttackRuntime(CPU, batched=True)
    capped = AttackRuntime(CPU, batched=True, max_models=1)
    kind = get("pgd")
    assert BatchedExecutor(models, x, y, kind=kind, eps=0.3, params=PGD,
                           runtime=capped).units_per_call == 1
    kw = dict(kind=kind, eps=0.3, params=PGD, batch_size=4, seed=5, device=CPU)
    a = craft_transfer(models, x, y, runtime=whole, **kw)
    b = craft_transfer(models, x, y, runtime=capped, **kw)
    assert torch.equal(a, b)
    crafters = assign_crafters(len(x), 3, mode="per-batch", batch_size=4, gen=generator(3))
    a = craft_paper(models, x, y, crafters=crafters, runtime=whole, **kw)
    b = craft_paper(models, x, y, crafters=crafters, runtime=capped, **kw)
    assert torch.equal(a, b)
