"""AutoAttack's kind module: against the whole population its APGDs are ours and decide on the
exact expected accuracy (issue 26, item 4), which the record and the departures say."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from clmrepro.kinds import attacks
from clmrepro.kinds.attacks import autoattack

ADAPTER = TypeAdapter(attacks.Attack)


def test_departures_name_the_expected_accuracy_apgd_even_at_the_paper_settings():
    spec = ADAPTER.validate_python({"kind": "autoattack", "eps": [0.3], "id": "aa"})
    notes = autoattack.departures(spec)
    assert [n for n in notes if "one random draw" in n] == [
        autoattack.ADAPTIVE_DEPARTURE.format(label="aa")]
    assert notes[-1].startswith("attack aa: adaptive APGD-CE/DLR decide")
    steps = ADAPTER.validate_python({"kind": "autoattack", "eps": [0.3], "steps": 10})
    assert autoattack.departures(steps)[0] == "attack autoattack: steps = 10 (paper/code: 100)"


def test_adaptive_record_says_rand_with_expected_accuracy_decisions():
    params = autoattack.params(ADAPTER.validate_python({"kind": "autoattack", "eps": [0.3]}),
                               0.3, 0.01)
    record = autoattack.adaptive_record(0.3, params)
    assert record["version"] == "rand"
    assert record["success"] == "expected-accuracy" and record["apgd"] == "expected-accuracy"


def test_adaptive_components_are_ours_and_linf_only():
    import torch
    from torch import nn

    from clmrepro.core.attacks.apgd import ExpectedAccuracyAPGD

    model = nn.Linear(2, 10)
    p = {"norm": "Linf", "steps": 7, "n_restarts": 2, "eot_iter": 3}
    subs = autoattack.adaptive_components(model, lambda x: torch.zeros(1), 0.1, p)
    assert [type(s) for s in subs] == [ExpectedAccuracyAPGD] * 2
    assert [s.loss for s in subs] == ["ce", "dlr"]
    assert [(s.steps, s.n_restarts, s.eot_iter, s.eps) for s in subs] == [(7, 2, 3, 0.1)] * 2
    with pytest.raises(ValueError, match="Linf"):
        autoattack.adaptive_components(model, None, 0.1, {**p, "norm": "L2"})
