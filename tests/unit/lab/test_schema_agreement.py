"""The editors' JSON Schema (workflow/schemas/spec.schema.json) agrees with `clmrepro validate`.

Every spec in specs/ passes the standard `jsonschema` validator, and every spec of the invalid
corpus (tests/unit/spec/invalid) fails it, except the cases JSON Schema cannot express; those
are listed below with the reason, and the test fails if the list is wrong either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from clmrepro.emit.schema import render_schema
from clmrepro.plan import paths
from clmrepro.spec import load_spec
from clmrepro.spec.loading import _Loader

ROOT = Path(__file__).resolve().parents[3]
SPECS = sorted(p for p in (ROOT / "specs").glob("*.yaml") if p.name != "paper_tables.yaml")
CORPUS = sorted((ROOT / "tests/unit/spec/invalid").glob("*.yaml"))

CROSS_ENTRY = "a reference between entries (JSON Schema has no way to compare two values)"
UNIQUE = "unique by one key (uniqueItems compares whole items)"
CANNOT_EXPRESS = {
    "yaml_syntax": "not YAML: no document reaches the validator",
    "yaml_tab": "not YAML (a tab in indentation): no document reaches the validator",
    "duplicate_key": "YAML keeps the last of two equal keys before any validator sees them",
    "duplicate_experiment": UNIQUE,
    "duplicate_population": UNIQUE,
    "duplicate_attack": f"{UNIQUE}: the same attack id at the same eps",
    "from_missing": CROSS_ENTRY,
    "from_self": CROSS_ENTRY,
    "from_cycle": CROSS_ENTRY,
    "from_size_mismatch": f"{CROSS_ENTRY}: the parent's size",
    "subset_unknown_population": CROSS_ENTRY,
    "sweep_from_swept": CROSS_ENTRY,
    "mnist5k_overflow": "arithmetic across fields (n_train + n_test <= 5000)",
    "too_many_samples": "comparison across fields (n_samples <= n_test, whose default depends "
                        "on the dataset)",
    "transfer_samples_above_n_samples": "comparison across fields (transfer_samples <= "
                                        "n_samples)",
    "adaptive_samples_above_n_test": "comparison across fields (adaptive_samples <= n_test, "
                                     "whose default depends on the dataset)",
    "sweep_bad_value": "a swept value is checked against the knob it names (the schema only "
                       "knows it is a number)",
    "dataset_two_roots": "comparison across experiments (one root per dataset name)",
    "clm_of_one_model": "a population's fewest members depend on its regime (kinds.regimes' "
                        "MIN_SIZE: 1 for ulm and ulm-adv, 2 elsewhere)",
}


def validator() -> Draft202012Validator:
    schema = json.loads(render_schema())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def document(path: Path):
    # the loader `clmrepro validate` uses (YAML 1.2 numbers such as 1e-4, as editors read them)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def test_committed_schema_is_the_generated_one():
    assert (ROOT / paths.SCHEMA).read_text() == render_schema()


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_shipped_spec_passes_jsonschema(path: Path):
    load_spec(path)  # valid for clmrepro
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(document(path))]
    assert errors == []


def test_corpus_fails_jsonschema_wherever_it_can_say_the_rule():
    check = validator()
    accepted = []
    for path in CORPUS:
        try:
            data = document(path)
        except yaml.YAMLError:
            accepted.append(path.stem)  # the validator never gets a document
            continue
        if check.is_valid(data):
            accepted.append(path.stem)
    assert sorted(accepted) == sorted(CANNOT_EXPRESS), (
        "cases JSON Schema accepts but `clmrepro validate` rejects must be listed in "
        "CANNOT_EXPRESS with a reason, and only those")


def test_schema_says_the_rules_it_can():
    """A few rules that used to be missing from the schema: fraction budgets, ranges of
    fraction-or-number fields, which datasets an architecture takes, sweep knob names."""
    check = validator()
    spec = document(ROOT / "specs/tiny.yaml")
    attacks = spec["experiments"][0]["evaluation"]["attacks"]
    for eps, ok in [("8/255", True), ("8 / 255", True), ("8/0", False), ("0/3", False),
                    (0.3, True), (0, False), (1.5, False), ("0.3", False)]:
        attacks[0]["eps"] = [eps]
        assert check.is_valid(spec) is ok, eps
    attacks[0]["eps"] = [0.3]
    spec["experiments"][0]["architecture"] = "resnet18"
    assert not check.is_valid(spec)
    spec["experiments"][0]["architecture"] = "lenet5"
    clm = spec["experiments"][0]["populations"][1]
    for sweep, ok in [({"regime.alpha": [0.1, 0.2]}, True), ({"regime.alfa": [0.1]}, False),
                      ({"regime.alpha": []}, False), ({"regime.alpha": [0.1, 0.1]}, False),
                      ({"id": ["a"]}, False)]:
        clm["sweep"] = sweep
        assert check.is_valid(spec) is ok, sweep
