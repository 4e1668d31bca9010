from __future__ import annotations

from pathlib import Path

import pytest

from clmrepro.spec import SpecError, load_spec, parse_spec
from clmrepro.spec.models import Spec

ROOT = Path(__file__).resolve().parents[3]
SPECS = ["paper", "smoke", "mnist5k", "tiny"]

MINIMAL = """
name: m
experiments:
  - id: e
    dataset: {name: mnist-5k}
    architecture: lenet5
    populations: [{id: ulm, size: 2, regime: {kind: ulm}}]
    evaluation: {attacks: [{kind: pgd, eps: [0.3]}]}
"""


@pytest.mark.parametrize("name", SPECS)
def test_shipped_specs_validate(name):
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    assert spec.name == name


def test_paper_spec_has_the_papers_populations():
    spec = load_spec(ROOT / "specs" / "paper.yaml")
    assert [e.id for e in spec.experiments] == ["mnist", "cifar10"]
    for experiment in spec.experiments:
        sizes = {p.id: p.size for p in experiment.populations}
        # the paper's four, and the one-model reference rows (issue 27)
        assert sizes == {"ulm": 10, "clm": 10, "ulm-adv": 4, "clm-adv": 4, "one-model": 1,
                         "one-model-adv": 1}
        sources = {p.id: p.regime.from_ for p in experiment.populations}
        assert sources == {"ulm": None, "clm": "ulm", "ulm-adv": None, "clm-adv": "ulm-adv",
                           "one-model": None, "one-model-adv": None}
    cifar = spec.experiments[1].evaluation.attacks
    assert sorted({eps for a in cifar for eps in a.eps}) == [8 / 255, 16 / 255]


def test_defaults_are_visible_and_minimal_spec_parses():
    spec = parse_spec(MINIMAL)
    assert spec.seed == 0 and spec.device == "auto" and spec.threads == 1
    assert spec.paper_tables == "specs/paper_tables.yaml"
    attack = spec.experiments[0].evaluation.attacks[0]
    assert (attack.steps, attack.alpha, attack.random_start) == (40, None, True)
    assert spec.experiments[0].evaluation.threat_models == ["paper", "transfer", "adaptive"]


def test_fraction_budgets_and_yaml12_floats():
    text = MINIMAL.replace("eps: [0.3]", "eps: ['8/255', 1e-2]")
    spec = parse_spec(text.replace("mnist-5k", "fake-cifar10").replace("lenet5", "resnet18"))
    assert spec.experiments[0].evaluation.attacks[0].eps == [8 / 255, 0.01]


def test_every_field_has_a_description():
    def walk(schema):
        for name, definition in schema.get("$defs", {}).items():
            for field, body in definition.get("properties", {}).items():
                yield f"{name}.{field}", body
        for field, body in schema.get("properties", {}).items():
            yield field, body

    missing = [name for name, body in walk(Spec.model_json_schema(by_alias=True))
               if "description" not in body and name.split(".")[-1] != "kind"]
    assert missing == []


def test_several_problems_give_several_lines_sorted_by_line():
    text = MINIMAL.replace("size: 2", "size: 0").replace("eps: [0.3]", "eps: [2]")
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "x.yaml")
    lines = caught.value.lines
    assert len(lines) == 2
    assert lines[0].startswith("x.yaml:7 experiments[0].populations[0].size: must be >= 1")
    assert lines[1].startswith("x.yaml:8 experiments[0].evaluation.attacks[0].eps[0]: must be <= 1")


def test_replicates_execution_and_subsets_default_to_the_single_run_of_the_authors():
    experiment = parse_spec(MINIMAL).experiments[0]
    assert experiment.replicates == 1
    assert experiment.execution.model_dump() == {"population": "auto",
                                                 "memory_format": "contiguous",
                                                 "precision": "fp32", "clm_schedule": "sequential"}
    assert experiment.evaluation.transfer_samples is None
    assert experiment.evaluation.adaptive_samples is None
    # `clmrepro schema` shows the defaults
    schema = Spec.model_json_schema(by_alias=True)
    assert schema["$defs"]["Experiment"]["properties"]["replicates"]["default"] == 1
    execution = schema["$defs"]["Execution"]["properties"]
    assert {name: body["default"] for name, body in execution.items()} == {
        "population": "auto", "memory_format": "contiguous", "precision": "fp32",
        "clm_schedule": "sequential", "gpu_memory_gb": None}   # null: no card cap (issue 30)


def test_new_knobs_give_one_line_per_problem():
    text = (MINIMAL.replace("    architecture: lenet5\n",
                            "    architecture: lenet5\n    replicates: 0\n"
                            "    execution: {precision: fp64, clm_schedule: lockstep}\n")
            .replace("evaluation: {attacks:", "evaluation: {n_samples: 100, transfer_samples: 200, "
                     "adaptive_samples: 300, attacks:"))
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "x.yaml")
    lines = caught.value.lines
    assert len(lines) == 2, lines       # pydantic errors first; cross-field checks need a model
    assert "replicates: must be >= 1 (got 0)" in lines[0]
    assert "execution.precision: " in lines[1] and "(got 'fp64')" in lines[1]
    fixed = text.replace("replicates: 0", "replicates: 2").replace("fp64", "bf16")
    with pytest.raises(SpecError) as caught:
        parse_spec(fixed, "x.yaml")
    assert [line.split(": ")[0].split(" ")[1] for line in caught.value.lines] == [
        "experiments[0].evaluation.transfer_samples", "experiments[0].evaluation.adaptive_samples"]
    fitting = fixed.replace("200", "50").replace("300", "100")
    assert parse_spec(fitting).experiments[0].replicates == 2


def test_gpu_memory_gb_is_in_the_normalised_spec_only_when_set():
    import yaml

    data = yaml.safe_load(MINIMAL)
    plain = parse_spec(MINIMAL).experiments[0].execution
    assert "gpu_memory_gb" not in plain.model_dump(mode="json")
    data["experiments"][0]["execution"] = {"gpu_memory_gb": 24}
    sized = parse_spec(yaml.safe_dump(data)).experiments[0].execution
    assert sized.model_dump(mode="json")["gpu_memory_gb"] == 24
    data["experiments"][0]["execution"] = {"gpu_memory_gb": 0}
    with pytest.raises(Exception, match="gpu_memory_gb"):
        parse_spec(yaml.safe_dump(data))
