"""The job file as typed models (plan.jobs): every stage round-trips byte-identically, and a
hand-edited file with an unknown, missing or mistyped key is refused in one line."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from clmrepro.plan import paths
from clmrepro.plan.compile import compile_spec
from clmrepro.plan.jobs import JOB_MODELS, STAGES, JobError, TrainJob, parse_job
from clmrepro.plan.model import dumps
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]


def plan_of(name: str):
    return compile_spec(load_spec(ROOT / f"specs/{name}.yaml"), f"specs/{name}.yaml")


@pytest.fixture(scope="module")
def jobs() -> dict[str, dict]:
    """One job dict per stage (and the baselines' train job, which has a diversity block)."""
    found = {}
    for name in ("smoke", "baselines-mnist5k"):
        for job in plan_of(name).jobs:
            key = "diversity" if "diversity" in job.job["params"] else job.stage
            found.setdefault(key, job.job)
    return found


def round_trip(text: str) -> str:
    return dumps(parse_job(json.loads(text), "job.json").as_dict())


def test_a_job_file_of_every_stage_round_trips_byte_identically(jobs):
    assert set(STAGES) | {"diversity"} == set(jobs)
    for job in jobs.values():
        text = dumps(job)
        assert round_trip(text) == text


def test_hand_made_variants_round_trip_too(jobs):
    # a re-scoring evaluate job (an attack job's params, stage evaluate), the deterministic
    # inference rules, and numbers in both spellings (0 and 0.0 stay as written)
    rescore = {**copy.deepcopy(jobs["attack"]), "stage": "evaluate"}
    rescore["params"].update(inference=["average", "vote"])  # no saliency_samples: none drawn
    train = copy.deepcopy(jobs["train"])
    train["params"]["training"].update(momentum=0, weight_decay=0.0, lr=1)
    for job in (rescore, train):
        text = dumps(job)
        assert round_trip(text) == text
    assert '"momentum": 0,' in dumps(train) and '"weight_decay": 0.0\n' in dumps(train)


def test_the_compiled_smoke_job_files_all_parse_and_dump_to_their_bytes():
    files = sorted((ROOT / paths.jobs_dir("smoke")).glob("*.json"))
    files += sorted((ROOT / paths.DATA_PIPELINES).glob("*/job.json"))
    assert len(files) > 10
    stages = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        job = parse_job(json.loads(text), str(path))
        stages.add(job.stage)
        assert dumps(job.as_dict()) == text, path
    assert {"data", "train", "retrain", "evaluate", "attack", "report"} <= stages


def test_the_plan_holds_typed_jobs_of_their_stage():
    for job in plan_of("smoke").jobs:
        assert isinstance(job.typed, JOB_MODELS[job.stage])
        assert job.job == job.typed.as_dict()
    with pytest.raises(ValidationError):
        job.typed.id = "other"  # frozen


def error_of(data: object) -> str:
    with pytest.raises(JobError) as caught:
        parse_job(data, "workflow/compiled/x/jobs/train.json")
    line = str(caught.value)
    assert "\n" not in line and line.startswith("workflow/compiled/x/jobs/train.json: ")
    return line.removeprefix("workflow/compiled/x/jobs/train.json: ")


def test_unknown_missing_and_mistyped_keys_are_one_line_naming_the_key(jobs):
    train = jobs["train"]
    assert error_of({**train, "params": {**train["params"], "epoch": 3}}) == \
        "unknown key 'params.epoch' (given 3)"
    assert error_of({**train, "colour": "red"}) == "unknown key 'colour' (given 'red')"
    training = {k: v for k, v in train["params"]["training"].items() if k != "lr"}
    assert error_of({**train, "params": {**train["params"], "training": training}}) == \
        "key 'params.training.lr' is missing"
    assert error_of({k: v for k, v in train.items() if k != "seed"}) == "key 'seed' is missing"
    bad_lr = {**train["params"]["training"], "lr": "fast"}
    assert error_of({**train, "params": {**train["params"], "training": bad_lr}}) == \
        "key 'params.training.lr' must be a number (given 'fast')"
    assert error_of({**train, "gpu": "yes"}) == "key 'gpu' should be a valid boolean (given 'yes')"
    # a boolean is not a number, a number not a string
    assert "key 'params.replicate' should be a valid integer (given True)" in error_of(
        {**train, "params": {**train["params"], "replicate": True}})
    # a union's branches are one key, not several problems
    assert error_of({**train, "inputs": {"data": 3}}) == \
        "key 'inputs.data' should be a valid string (given 3)"
    two = {k: v for k, v in train["params"].items() if k != "training"}
    assert error_of({**train, "params": {**two, "epoch": 3}}) == \
        "key 'params.training' is missing (and 1 more)"
    assert "key 'params.architecture'" in error_of(
        {**train, "params": {**train["params"], "architecture": 5}})


def test_the_stage_is_named_when_it_is_wrong_or_absent(jobs):
    assert error_of({**jobs["train"], "stage": "deploy"}) == (
        "key 'stage' is 'deploy'; allowed: data, train, retrain, attack, evaluate, sanity, report")
    assert error_of({k: v for k, v in jobs["train"].items() if k != "stage"}) == \
        "key 'stage' is missing"
    assert error_of([1, 2]) == "job file must hold a JSON object (got list)"
    # a key of another stage is unknown here: an attack block has no place in a train job
    assert error_of({**jobs["train"], "params": {**jobs["train"]["params"], "attack": None}}) == \
        "unknown key 'params.attack' (given None)"


def test_a_data_job_has_no_seed_and_the_others_need_one(jobs):
    assert "seed" not in jobs["data"]
    assert "seed" not in parse_job(jobs["data"]).as_dict()
    assert isinstance(parse_job(jobs["retrain"]), TrainJob)


def test_the_job_models_import_no_torch():
    code = "import sys, clmrepro.plan.jobs; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
