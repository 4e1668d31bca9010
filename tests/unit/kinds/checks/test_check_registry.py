"""The robustness checks' registry (clmrepro.kinds.checks): one module per check, read by the
spec, the plan, the sanity job and the report instead of branching on a check's name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from clmrepro.kinds import checks
from clmrepro.kinds.checks.base import Costs
from clmrepro.spec.models import Sanity, SanityCheck

ROOT = Path(__file__).resolve().parents[4]
SIX = ("convergence", "unbounded", "square", "zero-gradient", "silent-success", "noise")
DEFAULT = SIX + ("margin-loss",)   # the loss-function check joined the defaults (issue 26)


def test_importing_the_checks_loads_neither_torch_nor_torchattacks():
    code = ("import sys\nimport clmrepro.kinds.checks\n"
            "print('torch' in sys.modules, 'torchattacks' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    assert done.stdout.strip() == "False False"


def test_the_report_order_and_the_job_order_are_the_registry_order():
    assert [r.id for r in checks.REPORTS][:8] == [
        "iterative-vs-single-step", "budget", "convergence", "gradient-free",
        "white-box-vs-transfer", "zero-gradients", "silent-success", "random-noise"]
    assert checks.JOB_NAMES[:6] == SIX
    assert checks.DEFAULT_JOBS == DEFAULT
    # added to the defaults after check files were written: shown where a file ran it
    assert checks.WHERE_RUN == {"loss-function": "margin-loss"}


def test_the_spec_reads_the_names_the_default_and_the_knobs_from_the_registry():
    assert get_args(SanityCheck) == checks.JOB_NAMES
    sanity = Sanity()
    assert tuple(sanity.checks) == checks.DEFAULT_JOBS
    for job in checks.JOBS:
        for knob in job.knobs:
            assert knob in Sanity.model_fields, knob
    assert (sanity.restarts, sanity.noise_draws, sanity.square_queries) == (5, 20, 5000)
    with pytest.raises(ValueError, match="restarts"):
        Sanity(restarts=1)


def test_an_unknown_check_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown sanity check 'pgd'.*convergence"):
        checks.get("pgd")
    assert [j.name for j in checks.jobs(["noise", "convergence"])] == ["convergence", "noise"]


def test_each_check_prices_only_its_own_work():
    c = Costs(m=1, n=4, steps=10, step=2.0, grad=1.0, forward=0.5, adversarial=False)
    s = {"restarts": 5, "noise_draws": 20, "square_queries": 100,
         "unbounded": {"steps": 7}}
    price = {j.name: j.price(s, "paper", c) for j in checks.JOBS}
    assert price["convergence"] == (2 * 10 * 2.0 + 5 * 10 * 2.0, 2)
    assert price["unbounded"] == (0.0, 0)                       # adaptive only
    assert checks.get("unbounded").price(s, "adaptive", c) == (7 * 2.0, 1)
    assert price["square"] == (100 * 1 * 0.5 * 0.4, 1)
    # the paper protocol's noise draw is chosen on the crafting submodel (m = 1), adaptive's
    # on all n; the set is then scored by all n (the 1)
    assert price["noise"] == (20 * 1 * 0.5, 1)
    assert checks.get("noise").price(s, "adaptive", Costs(4, 4, 10, 2.0, 1.0, 0.5, False)) == (
        20 * 4 * 0.5, 1)
    # two losses at two points, and the forward that picks the correctly classified images
    assert price["zero-gradient"] == (4 * 1.0 + 0.5, 0)
    assert price["silent-success"] == (0.0, 0)


def test_the_attacks_a_check_adds_carry_the_spec_values():
    s = {"eps": 0.3, "pgd": {"alpha": 0.01, "steps": 40, "random_start": False},
         "restarts": 7, "noise_draws": 3, "square_queries": 10, "square_p_init": 0.8,
         "unbounded": {"eps": 1.0, "alpha": 0.05, "steps": 100, "random_start": True}}
    conv = checks.get("convergence").attacks(s, "paper")
    assert conv["pgd-restarts"]["restarts"] == 7 and conv["pgd-restarts"]["random_start"]
    assert conv["pgd-2x-steps"]["steps"] == 80
    assert checks.get("unbounded").attacks(s, "paper") == {}
    assert checks.get("square").attacks(s, "paper")["square"]["target"] == "crafting submodel"


def test_the_normalised_spec_holds_the_knobs_of_the_chosen_checks_only():
    """So an opt-in check's knobs change neither an existing spec's spec_sha256 nor its
    sanity jobs' params."""
    assert set(Sanity(checks=["noise"]).model_dump()) == {"checks", "samples", "eps",
                                                          "threat_models", "noise_draws"}
    full = Sanity().model_dump(mode="json", by_alias=True)
    assert {"restarts", "unbounded_steps", "square_queries", "noise_draws"} <= set(full)
