"""A YAML boolean is never read as a number: pydantic's lax mode would take `alpha: yes` as
α = 1 and `decay: false` as 0 without a word.  Boolean fields still take booleans."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from clmrepro.spec import SpecError, parse_spec
from clmrepro.spec.models import Spec

SPEC = """
name: m
experiments:
  - id: e
    dataset: {{name: mnist-5k}}
    architecture: lenet5
    populations:
      - id: clm
        size: 2
        regime: {{kind: clm, alpha: {alpha}, delta: 0.1}}
        training: {{augment: {augment}}}
    evaluation: {{attacks: [{{kind: pgd, eps: [0.3], random_start: {start}}}]}}
"""


@pytest.mark.parametrize("word", ["yes", "true", "True", "on", "no", "off"])
def test_boolean_words_are_refused_where_a_number_belongs(word):
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC.format(alpha=word, augment="yes", start="no"), "x.yaml")
    (line,) = caught.value.lines
    shown = "true" if word.lower() in ("yes", "true", "on") else "false"
    assert line == (f"x.yaml:10 experiments[0].populations[0].regime.alpha: must be a number, "
                    f"not a boolean (got {shown})")


def test_boolean_fields_still_take_yaml_booleans():
    spec = parse_spec(SPEC.format(alpha="0.1", augment="yes", start="no"))
    population = spec.experiments[0].populations[0]
    assert population.regime.alpha == 0.1 and population.training.augment is True
    assert spec.experiments[0].evaluation.attacks[0].random_start is False


def test_python_dicts_are_checked_too():
    data = {"name": "m", "seed": True, "experiments": []}
    with pytest.raises(ValidationError) as caught:
        Spec.model_validate(data)
    assert any(e["loc"] == ("seed",) for e in caught.value.errors())


def test_numbers_in_number_fields_are_untouched():
    spec = parse_spec(SPEC.format(alpha="1", augment="no", start="yes"))
    assert spec.experiments[0].populations[0].regime.alpha == 1.0
