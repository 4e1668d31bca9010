"""Images per threat model: one rule (plan.samples.images_per_threat) for the plan's prices, its
storage and the steps; the cap at the test split is decided there once (issue 25)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clmrepro.fields import THREAT_MODELS
from clmrepro.plan import estimate, storage
from clmrepro.plan.compile import compile_spec
from clmrepro.plan.samples import images_per_threat
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]


def params(**changes):
    return {"dataset": {"name": "mnist-5k", "n_test": 50}, "threat_models": list(THREAT_MODELS),
            "n_samples": 40, **changes}


def test_samples_then_n_samples_then_the_test_split():
    assert images_per_threat(params()) == {"paper": 40, "transfer": 40, "adaptive": 40}
    assert images_per_threat(params(samples={"transfer": 10})) == {
        "paper": 40, "transfer": 10, "adaptive": 40}
    # null N: the whole test split; an N beyond it: capped there
    assert images_per_threat(params(n_samples=None)) == dict.fromkeys(THREAT_MODELS, 50)
    assert images_per_threat(params(samples={"adaptive": 80}))["adaptive"] == 50
    # only the job's threat models; the paper protocol when it names none
    assert images_per_threat(params(threat_models=["adaptive"])) == {"adaptive": 40}
    assert images_per_threat({"dataset": {"n_test": 50}, "n_samples": 7}) == {"paper": 7}
    # a hand-made job without a known split nor N: the whole split, however large
    assert images_per_threat({"dataset": {}, "n_samples": None}) == {"paper": None}


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="unknown threat models"):
        images_per_threat(params(samples={"whitebox": 3}))
    with pytest.raises(ValueError, match="must be >= 1"):
        images_per_threat(params(samples={"paper": 0}))


def test_the_plan_its_prices_its_storage_and_the_steps_read_one_number():
    """Every attack job of the demo: the images the plan recorded are what the estimate prices,
    what the storage counts and what the attack step crafts (it calls images_per_threat)."""
    plan = compile_spec(load_spec(ROOT / "specs/smoke.yaml"), "specs/smoke.yaml")
    attacks = plan.stage("attack")
    assert attacks
    for job in attacks:
        recorded = job.job["params"]["samples"]
        assert images_per_threat(job.job["params"]) == recorded
        assert estimate.samples_of(job.job) == recorded
        assert storage.threat_sizes(job.job) == recorded
    arc = next(job for job in attacks if job.job["params"]["attack"]["kind"] == "arc")
    assert list(images_per_threat(arc.job["params"])) == ["adaptive"]
