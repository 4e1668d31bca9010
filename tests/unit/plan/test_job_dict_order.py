"""A step gets its job as the file has it: the typed job's dict has the file's key order, so
a block a step saves (the attack block in adversarial.pt) has the same bytes either way."""

import json
import pickle

from clmrepro.plan import paths
from clmrepro.plan.jobs import parse_job

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def test_as_dict_has_the_key_order_of_the_job_file():
    jobs = sorted((ROOT / paths.jobs_dir("smoke")).glob("*.json"))
    assert jobs
    for path in jobs:
        from_file = json.loads(path.read_text())
        typed = parse_job(from_file, str(path)).as_dict()
        assert typed == from_file
        # dict order matters to pickle (torch.save): the same bytes, not only equal dicts
        assert pickle.dumps(typed) == pickle.dumps(from_file), path.name
