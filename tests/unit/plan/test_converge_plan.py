"""A PGD run to convergence in the plan (issue 26 item 2): the job's params carry the knob only
where the spec sets it (the demo's job files stay as they were), and the plan prices the whole
ladder up to its cap."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from clmrepro.plan.compile import compile_spec, spec_sha256
from clmrepro.plan.estimate import estimate_seconds
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
CAL = json.loads((Path(__file__).parent / "fixtures" / "round-numbers.json").read_text())


def attack_jobs(plan, kind="pgd"):
    return [j for j in plan.stage("attack") if j.job["params"]["attack"]["kind"] == kind]


def test_the_demo_has_no_converge_and_hashes_as_committed():
    spec = load_spec(ROOT / "specs/smoke.yaml")
    plan = compile_spec(spec, "specs/smoke.yaml")
    assert all("converge" not in j.job["params"]["attack"]["params"]
               for j in plan.stage("attack"))
    committed = json.loads((ROOT / "workflow/compiled/smoke/plan.json").read_text())
    assert spec_sha256(spec) == committed["spec_sha256"]


def test_mnist5k_runs_pgd_to_convergence_and_prices_the_ladder_to_its_cap():
    spec = load_spec(ROOT / "specs/mnist5k.yaml")
    plan = compile_spec(spec, "specs/mnist5k.yaml")
    jobs = attack_jobs(plan)
    assert jobs and all(j.job["params"]["attack"]["params"]["converge"]
                        == {"tolerance": 0.5, "max_steps": 320} for j in jobs)
    job = jobs[0].job
    fixed = copy.deepcopy(job)
    del fixed["params"]["attack"]["params"]["converge"]
    ladder, once = estimate_seconds(job, CAL), estimate_seconds(fixed, CAL)
    # 40 → 320 steps: the crafting is 8 times PGD-40's; scoring and start-up are not
    assert 4 * once < ladder < 8 * once
