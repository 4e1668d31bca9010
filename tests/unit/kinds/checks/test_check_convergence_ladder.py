"""The convergence check reads the ladder of a grid attack run to convergence (issue 26
item 2): a ladder that hit its cap unconverged flags with its last move in points, one that
converged passes naming its rung."""

from __future__ import annotations

from clmrepro.kinds.checks import convergence
from clmrepro.kinds.checks.base import Population
from clmrepro.reporting.sanity import KIT, measure_text


def record(ladder, converged, replicate=0, threat="adaptive", inference=None):
    r = {"experiment": "mnist", "population": "ulm", "regime": "ulm", "replicate": replicate,
         "threat_model": threat, "attack": "pgd", "attack_kind": "pgd", "eps": 0.3,
         "mra": ladder[-1][1],
         "attack_params": {"alpha": 0.01, "steps": ladder[-1][0], "random_start": True,
                           "eps": 0.3, "ladder": ladder, "converged": converged}}
    if inference is not None:
        r["inference"] = inference
    return r


def verdict(records, threat="adaptive"):
    return convergence.verdict(Population("mnist", "ulm", "ulm", records), threat, KIT)


def test_a_capped_ladder_flags_with_its_last_move():
    measures, _ = verdict([record([[40, 0.30], [80, 0.25], [160, 0.22]], False),
                           record([[40, 0.30], [80, 0.298]], True, replicate=1)])
    assert len(measures) == 1 and measures[0].flags
    assert abs(measures[0].value - (-0.03)) < 1e-12      # the capped replicate's last move
    assert measure_text(measures[0]) == ("PGD at ε = 0.3: the ladder hit its cap of 160 steps "
                                         "unconverged; last move: -3.00 points")


def test_a_converged_ladder_passes_naming_its_rung():
    measures, _ = verdict([record([[40, 0.30], [80, 0.25], [160, 0.248]], True)])
    assert len(measures) == 1 and not measures[0].flags
    assert "converged at 160 steps" in measures[0].label


def test_records_without_a_ladder_or_of_another_threat_model_give_no_ladder_measure():
    plain = record([[40, 0.3]], True)
    plain["attack_params"] = {"alpha": 0.01, "steps": 40, "random_start": True, "eps": 0.3}
    assert verdict([plain])[0] == []
    assert verdict([record([[40, 0.3], [80, 0.2]], False, threat="paper")])[0] == []
    # a deterministic inference rule's record of the same set is not counted twice
    assert verdict([record([[40, 0.3], [80, 0.2]], False, inference="average")])[0] == []


def test_the_report_tables_show_the_knob_and_steps_not_the_ladder():
    from clmrepro.reporting.tables import params_text

    params = record([[40, 0.3], [80, 0.2]], False)["attack_params"]
    assert params_text({**params, "converge": {"tolerance": 0.5, "max_steps": 80}}) == (
        'alpha=0.01, converge={"tolerance": 0.5, "max_steps": 80}, eps=0.3, '
        'random_start=true, steps=80')
