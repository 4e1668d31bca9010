"""The attack registry (clmrepro.kinds.attacks): every kind module keeps the promise that
clmrepro.kinds.attacks.base describes, so the spec, the plan and the executors can read any
kind, including one added later, without knowing its name."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import TypeAdapter, ValidationError

from clmrepro.kinds import attacks
from clmrepro.kinds.attacks.base import AttackBase

MEMBERS = ("KIND", "LABEL", "Spec", "PARAM_KEYS", "ADAPTIVE_ONLY", "BATCHED", "build", "params",
           "departures", "deterministic", "sign_steps", "adaptive", "adaptive_record",
           "gradient_steps", "seconds_one", "seconds_adaptive", "calibration_params")
ADAPTER = TypeAdapter(attacks.Attack)


def test_importing_the_registry_loads_neither_torch_nor_torchattacks():
    code = ("import sys, clmrepro.kinds.attacks, clmrepro.spec.models; "
            "print('torch' in sys.modules, 'torchattacks' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.parametrize("kind", attacks.MODULES, ids=lambda m: m.KIND)
def test_every_kind_module_has_every_member(kind):
    missing = [name for name in MEMBERS if not hasattr(kind, name)]
    assert missing == []
    assert issubclass(kind.Spec, AttackBase)
    assert kind.Spec.model_fields["kind"].annotation.__args__ == (kind.KIND,)


@pytest.mark.parametrize("kind", attacks.MODULES, ids=lambda m: m.KIND)
def test_default_knobs_resolve_into_exactly_the_param_keys(kind):
    spec = ADAPTER.validate_python({"kind": kind.KIND, "eps": [0.3]})
    assert isinstance(spec, kind.Spec)
    params = kind.params(spec, 0.3, 0.01)
    assert set(params) == kind.PARAM_KEYS
    assert None not in [v for k, v in params.items() if k != "topk"]  # every knob resolved


@pytest.mark.parametrize("kind", attacks.MODULES, ids=lambda m: m.KIND)
def test_adaptive_only_kinds_have_no_single_model_attack(kind):
    assert (kind.build is None) == kind.ADAPTIVE_ONLY
    assert (kind.KIND in attacks.ADAPTIVE_ONLY_KINDS) == kind.ADAPTIVE_ONLY


@pytest.mark.parametrize("kind", attacks.MODULES, ids=lambda m: m.KIND)
def test_batched_kinds_give_a_sign_step_recipe(kind):
    params = kind.params(ADAPTER.validate_python({"kind": kind.KIND, "eps": [0.3]}), 0.3, 0.01)
    swapped = kind.deterministic(params)
    runs_as, runs_with = swapped if swapped is not None else (kind, params)
    recipe = runs_as.sign_steps(0.3, runs_with)
    assert (recipe is not None) == kind.BATCHED
    if recipe is not None:
        assert set(recipe) == {"fgsm", "alpha", "steps", "random_start", "decay"}


def test_the_registry_is_keyed_by_kind_in_its_tuple_order():
    assert attacks.ATTACK_KINDS == tuple(m.KIND for m in attacks.MODULES)
    assert attacks.ATTACK_KINDS[:6] == ("fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd", "arc")
    assert all(attacks.get(m.KIND) is m for m in attacks.MODULES)


def test_an_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="attack kind must be one of fgsm, pgd"):
        attacks.get("cw")
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "cw", "eps": [0.3]})


def test_eot_pgd_defaults_resolve_to_the_datasets_pgd_step():
    eot = attacks.get("eot-pgd")
    spec = ADAPTER.validate_python({"kind": "eot-pgd", "eps": [8 / 255]})
    assert eot.params(spec, 8 / 255, 2 / 255)["alpha"] == 2 / 255
    runs_as, runs_with = eot.deterministic(eot.params(spec, 8 / 255, 2 / 255))
    assert runs_as is attacks.get("pgd") and set(runs_with) == runs_as.PARAM_KEYS


def test_mifgsm_default_step_is_eps_over_steps_and_departures_name_changed_knobs():
    mifgsm = attacks.get("mifgsm")
    spec = ADAPTER.validate_python({"kind": "mifgsm", "eps": [0.3], "steps": 10})
    assert mifgsm.params(spec, 0.3, 0.01)["alpha"] == pytest.approx(0.03)
    assert mifgsm.departures(spec) == ["attack mifgsm: steps = 10 (paper/code: 5)"]
    assert attacks.get("pgd").departures(
        ADAPTER.validate_python({"kind": "pgd", "eps": [0.3]})) == []
