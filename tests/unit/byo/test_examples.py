"""The worked examples (docs/bring-your-own.md) validate and compile from the repository root:
their factories import, build and fit the dataset, and each job reads the factory's source."""

from __future__ import annotations

from pathlib import Path

import pytest

from clmrepro.plan.compile import compile_spec
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name, factory_file, populations", [
    ("quantised", "examples/quantised/model.py", {"plain", "quantised"}),
    ("mlp", "examples/mlp/model.py", {"ulm", "clm"}),
])
def test_an_example_compiles_with_its_factory_as_every_jobs_input(monkeypatch, name,
                                                                  factory_file, populations):
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    path = f"examples/{name}/spec.yaml"
    plan = compile_spec(load_spec(path), path)
    builders = [job for job in plan.jobs if job.stage not in ("data", "report")]
    assert {job.job["params"]["population"]["id"] for job in builders} == populations
    assert all(job.inputs["factory"] == factory_file for job in builders)
    assert all(job.job["params"]["architecture"].startswith("python:examples.")
               for job in builders)


def test_the_quantised_model_has_a_zero_input_gradient_and_the_plain_one_does_not():
    import torch

    from examples.quantised.model import build
    torch.manual_seed(0)
    x = torch.rand(4, 1, 32, 32, requires_grad=True)
    for levels, zero in ((4, True), (None, False)):
        model = build(levels=levels).eval()
        (grad,) = torch.autograd.grad(model(x).logsumexp(1).sum(), x)
        assert bool((grad == 0).all()) is zero, levels
