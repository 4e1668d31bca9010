"""Sweeps expand into members with readable ids; a sweep is sugar for writing them out."""

from __future__ import annotations

from pathlib import Path

import pytest

from clmrepro.plan.compile import compile_spec
from clmrepro.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]

BASE = """
name: s
seed: 3
device: cpu
experiments:
  - id: mnist
    dataset: {name: mnist-5k, n_train: 600, n_test: 200}
    architecture: lenet5
    populations:
      - {id: ulm, size: 2, regime: {kind: ulm}}
POPULATIONS
    evaluation:
      n_samples: 40
      threat_models: [paper]
      attacks:
ATTACKS
"""


def spec_text(populations: str, attacks: str = "        - {kind: fgsm, eps: [0.3]}") -> str:
    return BASE.replace("POPULATIONS", populations).replace("ATTACKS", attacks)


def ids(spec, what: str = "populations") -> list[str]:
    experiment = spec.experiments[0]
    if what == "populations":
        return [p.id for p in experiment.populations]
    return [a.id or a.kind for a in experiment.evaluation.attacks]


def test_ablation_alpha_expands_to_readable_ids():
    spec = load_spec(ROOT / "specs/ablation-alpha.yaml")
    assert ids(spec) == ["ulm", "clm-alpha0.01", "clm-alpha0.05", "clm-alpha0.1", "clm-alpha0.2",
                         "clm-alpha0.5"]
    members = spec.experiments[0].populations[1:]
    assert [p.regime.alpha for p in members] == [0.01, 0.05, 0.1, 0.2, 0.5]
    assert all(p.regime.from_ == "ulm" and p.regime.delta == 0.1 for p in members)
    (sweep,) = spec.sweeps
    assert sweep["id"] == "clm" and sweep["knobs"] == ["regime.alpha"]
    assert sweep["members"][1] == {"id": "clm-alpha0.05", "values": {"regime.alpha": 0.05}}


def test_grid_is_the_product_in_written_order():
    spec = parse_spec(spec_text("""      - id: clm
        size: 2
        regime: {kind: clm, from: ulm}
        sweep: {regime.alpha: [0.05, 0.1], regime.delta: [0.1, 0.2]}"""))
    assert ids(spec)[1:] == ["clm-alpha0.05-delta0.1", "clm-alpha0.05-delta0.2",
                             "clm-alpha0.1-delta0.1", "clm-alpha0.1-delta0.2"]
    assert [(p.regime.alpha, p.regime.delta) for p in spec.experiments[0].populations[1:]] == \
        [(0.05, 0.1), (0.05, 0.2), (0.1, 0.1), (0.1, 0.2)]


def test_attack_sweep_and_fraction_values():
    spec = parse_spec(spec_text("", "        - {kind: pgd, eps: ['8/255'], "
                                    "sweep: {steps: [5, 10], alpha: ['2/255']}}"))
    assert ids(spec, "attacks") == ["pgd-steps5-alpha0.00784314", "pgd-steps10-alpha0.00784314"]
    assert spec.experiments[0].evaluation.attacks[1].alpha == pytest.approx(2 / 255)
    assert spec.sweeps[0]["members"][0]["values"] == {"steps": 5, "alpha": pytest.approx(2 / 255)}


def test_references_to_a_swept_population_name_every_member():
    spec = parse_spec(spec_text("""      - id: clm
        size: 2
        regime: {kind: clm, from: ulm}
        sweep: {regime.alpha: [0.1, 0.5]}""", """        - {kind: fgsm, eps: [0.3], populations: [clm]}""").replace(
        "      threat_models: [paper]", "      threat_models: [paper]\n      populations: [ulm, clm]"))
    evaluation = spec.experiments[0].evaluation
    assert evaluation.populations == ["ulm", "clm-alpha0.1", "clm-alpha0.5"]
    assert evaluation.attacks[0].populations == ["clm-alpha0.1", "clm-alpha0.5"]


def test_a_sweep_compiles_to_the_plan_of_its_members_written_out():
    swept = spec_text("""      - id: clm
        size: 2
        regime: {kind: clm, from: ulm}
        sweep: {regime.alpha: [0.1, 0.5]}""")
    written = spec_text("""      - {id: clm-alpha0.1, size: 2, regime: {kind: clm, from: ulm, alpha: 0.1}}
      - {id: clm-alpha0.5, size: 2, regime: {kind: clm, from: ulm, alpha: 0.5}}""")
    a, b = compile_spec(parse_spec(swept), "s.yaml"), compile_spec(parse_spec(written), "s.yaml")
    assert a.spec_sha256 == b.spec_sha256
    assert [j.job for j in a.jobs[:-1]] == [j.job for j in b.jobs[:-1]]
    # only the report learns what was swept (its figure of MRA against alpha)
    assert a.jobs[-1].job["params"]["sweeps"][0]["knobs"] == ["regime.alpha"]
    assert b.jobs[-1].job["params"]["sweeps"] == []


@pytest.mark.parametrize("sweep, expected", [
    ("{regime.alpha: [0.1, -1]}", ":14 experiments[0].populations[1].sweep.regime.alpha[1]: "
                                  "must be > 0 (got -1)"),
    ("{regime.alfa: [0.1]}", ":14 experiments[0].populations[1].sweep.regime.alfa: unknown key; "
                             "did you mean 'alpha'?"),
    ("{regime.alpha: 0.1}", ":14 experiments[0].populations[1].sweep.regime.alpha: must be a "
                            "non-empty list of values (got 0.1)"),
    ("{id: [a, b]}", ":14 experiments[0].populations[1].sweep.id: cannot be swept"),
    ("{regime.kind: [ulm]}", "sweep.regime.kind: cannot be swept: write one population per kind"),
    ("{Alpha: [1]}", "sweep.Alpha: a knob path is dotted field names"),
    ("{regime.mask: ['Per Weight']}", "sweep.regime.mask: cannot name a member"),
    ("[0.1, 0.2]", ":14 experiments[0].populations[1].sweep: must be a mapping of knob paths"),
    ("{regime.alpha: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.011], "
     "regime.delta: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1]}",
     "sweep: the grid has 110 combinations; at most 100 (got 11 x 10)"),
])
def test_sweep_errors_are_one_line_with_file_and_line(sweep, expected):
    text = spec_text(f"""      - id: clm
        size: 2
        regime: {{kind: clm, from: ulm}}
        sweep: {sweep}""")
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "specs/x.yaml")
    lines = caught.value.lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("specs/x.yaml:") and expected in lines[0], lines
    assert "\n" not in lines[0] and "Traceback" not in lines[0]


def test_sweep_null_means_no_sweep():
    spec = parse_spec(spec_text("""      - {id: clm, size: 2, regime: {kind: clm, from: ulm}, sweep: null}"""))
    assert ids(spec) == ["ulm", "clm"] and spec.sweeps == []
