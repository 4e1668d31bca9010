"""A step gets its job as the file has it: the typed job read for a step has the file's key
order, so a block a step saves (the attack block in adversarial.pt) has the same bytes either
way; the step's main hands that dict to the step."""

import json
import pickle

from clmrepro.plan import paths
from clmrepro.plan.jobs import parse_job

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def test_as_read_has_the_key_order_of_the_job_file():
    jobs = sorted((ROOT / paths.jobs_dir("smoke")).glob("*.json"))
    assert jobs
    for path in jobs:
        from_file = json.loads(path.read_text())
        typed = parse_job(from_file, str(path)).as_read()
        assert typed == from_file
        # dict order matters to pickle (torch.save): the same bytes, not only equal dicts
        assert pickle.dumps(typed) == pickle.dumps(from_file), path.name


def test_a_step_gets_its_job_in_the_files_order(monkeypatch):
    from clmrepro.steps import common

    monkeypatch.setattr(common, "check_inputs", lambda job: None)  # no run's files here
    path = next((ROOT / paths.jobs_dir("smoke")).glob("attack-*.json"))
    seen = []
    common.step_main(seen.append, [str(path)])
    assert pickle.dumps(seen[0]) == pickle.dumps(json.loads(path.read_text()))
