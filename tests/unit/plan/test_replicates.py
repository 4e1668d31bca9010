"""Replicates (issue 11) and the fused attack jobs (issue 10) in the compiled plan.

K = 1 must keep every job id, artifact path and seed of the plan before this change (the job
files of specs/smoke.yaml on main at commit 919d7c8, kept in golden/), so existing results stay
valid; K >= 2 adds a replicate to ids, folders and seeds.  Since then (issue 17) a data job per
dataset was added, and every job that reads images takes its prepared file as ``inputs.data``
(the report: the manifests); nothing else of the golden jobs changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clmrepro.plan import paths
from clmrepro.plan.compile import compile_spec
from clmrepro.seeds import derive_seed
from clmrepro.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden" / "smoke-jobs-919d7c8.json"
ADDED = {"execution", "replicate", "samples"}
ADDED_INPUTS = {"data", "manifests", "sanity",  # issue 17: the data job's outputs; issue 18
                "manifest", "trained", "init_record"}  # issue 28: the sha256 records
DATA_JOBS = {"data-mnist-5k"}


def plan_of(name: str):
    return compile_spec(load_spec(ROOT / f"specs/{name}.yaml"), f"specs/{name}.yaml")


def tiny(replicates: int, extra: str = ""):
    text = (ROOT / "specs/tiny.yaml").read_text()
    text = text.replace("    architecture: lenet5\n",
                        f"    architecture: lenet5\n    replicates: {replicates}\n{extra}")
    return compile_spec(parse_spec(text), "specs/tiny.yaml")


def without_added(job: dict) -> dict:
    return {**job, "params": {k: v for k, v in job["params"].items() if k not in ADDED},
            "inputs": {k: v for k, v in job["inputs"].items() if k not in ADDED_INPUTS}}


def test_k1_smoke_keeps_the_ids_paths_and_seeds_of_main():
    old = json.loads(GOLDEN.read_text())
    plan = plan_of("smoke")
    new = {job.id: job.job for job in plan.jobs}
    fused = {i for i in old if i.startswith("evaluate-") and not i.endswith("-benign")}
    arc = {i for i in new if "-arc-" in i}  # the demo runs ARC since issue 18
    assert len(arc) == 4 and set(new) - arc == (set(old) - fused) | DATA_JOBS
    for job_id, job in new.items():
        if job_id in DATA_JOBS or job_id in arc:
            continue
        before = old[job_id]
        if job["stage"] == "attack":
            # the attack job now writes the scores its evaluate job wrote
            scorer = old[job_id.replace("attack-", "evaluate-", 1)]
            before = {**before, "outputs": {**before["outputs"], **scorer["outputs"]}}
        if job["stage"] == "report":
            inputs = without_added(job)["inputs"]
            assert {**inputs, "scores": [p for p in inputs["scores"] if "/arc-" not in p]} == (
                before["inputs"])
            assert job["inputs"]["manifests"] == ["data/prepared/mnist-5k.manifest.json"]
            assert job["inputs"]["sanity"] == []  # the demo runs no sanity job
            # issue 26 adds one departure: adaptive AutoAttack's APGD decides on expectations
            assert [d for d in job["params"]["departures"]
                    if "adaptive APGD-CE/DLR decide" not in d] == before["params"]["departures"]
            continue
        assert without_added(job) == before, job_id
        assert job["inputs"]["data"] == "data/prepared/mnist-5k.pt", job_id


def test_k1_has_replicate_zero_and_no_replicate_in_names():
    plan = plan_of("smoke")
    for job in plan.jobs:
        if job.stage not in ("report", "data"):
            assert job.job["params"]["replicate"] == 0
        assert "/r0/" not in job.job_file and not job.id.endswith("-r0")
        assert all("/r0/" not in path for path in job.output_paths())


def test_replicate_ids_folders_and_state():
    plan = tiny(3)
    ids = {job.id for job in plan.jobs}
    for r in range(3):
        assert {f"train-mnist-ulm-r{r}", f"retrain-mnist-clm-r{r}",
                f"evaluate-mnist-ulm-benign-r{r}", f"attack-mnist-clm-pgd-0.3-r{r}"} <= ids
    assert len(plan.jobs) == 1 + 3 * 8 + 1        # one data job, whatever K
    job = plan.by_id("attack-mnist-clm-pgd-0.3-r2").job
    assert job["params"]["replicate"] == 2
    assert job["inputs"] == {"population": "results/tiny/mnist/clm/r2/population.pt",
                             "trained": "results/tiny/mnist/clm/r2/training.json",
                             "data": "data/prepared/mnist-5k.pt",
                             "manifest": "data/prepared/mnist-5k.manifest.json"}
    assert job["outputs"] == {
        "adversarial": "results/tiny/mnist/clm/r2/attacks/pgd-eps0.3/adversarial.pt",
        "scores": "results/tiny/mnist/clm/r2/scores/pgd-eps0.3.json"}
    train = plan.by_id("train-mnist-ulm-r1")
    assert train.outputs == {"population": "results/tiny/mnist/ulm/r1/population.pt",
                             "record": "results/tiny/mnist/ulm/r1/training.json"}
    assert paths.state_dir("tiny", "mnist", "ulm", 1) == ".clmrepro-state/tiny/mnist/ulm/r1"
    assert paths.state_dir_of(train.outputs["population"]) == ".clmrepro-state/tiny/mnist/ulm/r1"
    assert (paths.attack_state_dir_of(job["inputs"]["population"], "pgd", 0.3)
            == paths.attack_state_dir("tiny", "mnist", "clm", "pgd", 0.3, 2)
            == ".clmrepro-state/tiny/mnist/clm/r2/attack-pgd-eps0.3")
    single = plan_of("smoke").by_id("train-mnist-ulm")
    assert paths.state_dir_of(single.outputs["population"]) == ".clmrepro-state/smoke/mnist/ulm"
    with pytest.raises(ValueError):
        paths.state_dir_of("elsewhere/population.pt")
    # a hand-made job's population outside results/: its state by ids
    assert (paths.state_dir_of("elsewhere/population.pt", "t", "e", "p")
            == paths.state_dir("t", "e", "p") == ".clmrepro-state/t/e/p")


def test_the_steps_find_their_state_folders_through_plan_paths():
    """The steps derive a state folder from the population path alone (one rule for the
    replicate folder): what the plan's paths say, for K = 1 and K = 3."""
    from clmrepro.steps.attack import attack_state_dir
    from clmrepro.steps.train import state_dir_for

    for plan, at in ((tiny(3), 2), (plan_of("smoke"), None)):
        suffix = "" if at is None else f"-r{at}"
        spec = plan.spec
        train = plan.by_id(f"retrain-mnist-clm{suffix}").job
        attack = plan.by_id(f"attack-mnist-clm-pgd-0.3{suffix}").job
        assert str(state_dir_for(train)) == paths.state_dir(spec, "mnist", "clm", at)
        assert str(attack_state_dir(attack)) == paths.attack_state_dir(spec, "mnist", "clm",
                                                                      "pgd", 0.3, at)


def test_retrained_replicate_starts_from_its_parents_same_replicate():
    plan = tiny(3)
    for r in range(3):
        retrain = plan.by_id(f"retrain-mnist-clm-r{r}")
        parent, data = plan.by_id(f"train-mnist-ulm-r{r}"), plan.by_id("data-mnist-5k")
        assert retrain.inputs == {"init": parent.outputs["population"],
                                  "init_record": parent.outputs["record"],
                                  "data": data.outputs["data"],
                                  "manifest": data.outputs["manifest"]}


def test_replicate_seeds_differ_and_are_stable():
    single, triple = tiny(1), tiny(3)
    # replicate 0 of K = 3 is the K = 1 run
    for job in single.jobs:
        if job.stage not in ("report", "data"):
            assert triple.by_id(f"{job.id}-r0").job["seed"] == job.job["seed"]
    seeds = [job.job["seed"] for job in triple.jobs if job.stage != "data"]
    assert len(seeds) == len(set(seeds))
    # pinned: the formula is derive_seed(root, *names, "replicate", r) for r >= 1
    assert triple.by_id("train-mnist-ulm-r1").job["seed"] == 4653179310093501554
    assert triple.by_id("attack-mnist-clm-pgd-0.3-r2").job["seed"] == 3121685038998271769
    assert triple.by_id("train-mnist-ulm-r1").job["seed"] == derive_seed(
        0, "mnist", "ulm", "replicate", 1)


def test_report_takes_every_replicate():
    plan = tiny(3)
    report = plan.by_id("report")
    scored = [job for job in plan.jobs if "scores" in job.outputs]
    assert report.inputs["scores"] == [job.outputs["scores"] for job in scored]
    assert len(report.inputs["scores"]) == 3 * 2 * 3          # K × pops × (benign + 2 attacks)
    assert len(report.inputs["records"]) == 3 * 2
    assert len(report.inputs["analyses"]) == 3 * 2
    assert any("3 replicates" in note for note in report.job["params"]["precision_notes"])


def test_stated_subsets_reach_the_attack_jobs_and_the_report():
    text = (ROOT / "specs/tiny.yaml").read_text().replace(
        "      n_samples: 40\n", "      n_samples: 40\n      transfer_samples: 10\n"
        "      adaptive_samples: 20\n")
    plan = compile_spec(parse_spec(text), "specs/tiny.yaml")
    job = plan.by_id("attack-mnist-ulm-fgsm-0.3").job
    assert job["params"]["samples"] == {"paper": 40, "transfer": 10, "adaptive": 20}
    assert job["params"]["n_samples"] == 40
    report = plan.by_id("report").job["params"]
    assert not any("first 10" in note for note in report["departures"])
    assert any("transfer threat model on the first 10 of the 40" in note
               and "adaptive threat model on the first 20" in note
               for note in report["precision_notes"])
    only_paper = text.replace("threat_models: [paper, transfer, adaptive]",
                              "threat_models: [paper]")
    job = compile_spec(parse_spec(only_paper), "x").by_id("attack-mnist-ulm-fgsm-0.3").job
    assert job["params"]["samples"] == {"paper": 40}
