"""One-model reference rows (issue 27): a ULM or ULM-Adv population of size 1 compiles, is
scored under the paper protocol and the adaptive threat model but has no transfer matrix (no
other member to transfer to), and its neighbours' jobs are the same as without it."""

from __future__ import annotations

import yaml

from clmrepro.plan.compile import compile_spec
from clmrepro.spec import parse_spec

SPEC = {
    "name": "tiny", "description": "one model beside a population", "seed": 0, "device": "cpu",
    "threads": 1,
    "experiments": [{
        "id": "mnist", "dataset": {"name": "mnist-5k", "n_train": 600, "n_test": 200},
        "architecture": "lenet5",
        "populations": [
            {"id": "ulm", "size": 2, "regime": {"kind": "ulm"}, "training": {"epochs": 1}},
            {"id": "one-model", "size": 1, "regime": {"kind": "ulm"},
             "training": {"epochs": 1}}],
        "evaluation": {"n_samples": 40, "transfer_samples": 20,
                       "threat_models": ["paper", "transfer", "adaptive"],
                       "attacks": [{"kind": "fgsm", "eps": [0.3]}]}}]}


def jobs_of(spec: dict) -> dict:
    plan = compile_spec(parse_spec(yaml.safe_dump(spec), "tiny.yaml"), "specs/tiny.yaml")
    return {job.id: job.job for job in plan.jobs}


def test_one_model_is_scored_without_a_transfer_matrix():
    jobs = jobs_of(SPEC)
    one = jobs["attack-mnist-one-model-fgsm-0.3"]["params"]
    assert one["threat_models"] == ["paper", "adaptive"]
    assert set(one["samples"]) == {"paper", "adaptive"}
    assert one["population"]["size"] == 1
    ulm = jobs["attack-mnist-ulm-fgsm-0.3"]["params"]
    assert ulm["threat_models"] == ["paper", "transfer", "adaptive"]
    assert ulm["samples"]["transfer"] == 20


def test_adding_a_one_model_row_leaves_the_populations_jobs_unchanged():
    alone = {**SPEC, "experiments": [{**SPEC["experiments"][0],
                                      "populations": SPEC["experiments"][0]["populations"][:1]}]}
    before, after = jobs_of(alone), jobs_of(SPEC)
    for job_id, job in before.items():
        if job_id != "report":
            assert after[job_id] == job, job_id
