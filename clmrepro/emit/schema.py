"""The spec's JSON Schema for editors, generated from the pydantic models (never by hand).

It must agree with `clmrepro validate` (tests/unit/lab/test_schema_agreement.py): every spec that
validates passes a standard JSON Schema validator, and every invalid spec fails it wherever
JSON Schema can say the rule.  pydantic writes the per-field rules; two cross-field rules that
JSON Schema can still say are added here from their one source: which datasets an architecture
takes (clmrepro.spec.checks) and which knob paths a sweep may name (the models' fields, less
clmrepro.spec.sweeps.FORBIDDEN).
"""

from __future__ import annotations

import types
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel

from clmrepro.plan.model import dumps
from clmrepro.spec.checks import ARCHITECTURE_DATASETS
from clmrepro.kinds import attacks as attack_kinds
from clmrepro.spec.models import REGIME_MODELS, Population, Spec
from clmrepro.spec.sweeps import FORBIDDEN

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def spec_schema() -> dict:
    # snakemake.utils.validate and editors need "$schema" (docs/reference.md §4); pydantic
    # omits it.
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    definitions = schema["$defs"]
    definitions["Experiment"]["allOf"] = [
        {"if": {"properties": {"architecture": {"const": architecture}},
                "required": ["architecture"]},
         "then": {"properties": {"dataset": {"properties": {"name": {"enum": list(datasets)}}}}}}
        for architecture, datasets in ARCHITECTURE_DATASETS.items()]
    _name_knobs(definitions["Population"], knob_paths([Population], "population",
                                                      regimes=list(REGIME_MODELS)))
    attacks = [kind.Spec for kind in attack_kinds.MODULES]
    for model in attacks:
        _name_knobs(definitions[model.__name__], knob_paths(attacks, "attack"))
    # `sanity: null` is the default; written out, snakemake.utils.validate would fill the
    # checks' own defaults into that null (it sets defaults before it picks the anyOf member)
    definitions["Evaluation"]["properties"]["sanity"].pop("default", None)
    return {"$schema": DRAFT, "title": "clmrepro spec", **schema}


def knob_paths(models: list[type[BaseModel]], entry: str,
               regimes: list[type[BaseModel]] | None = None) -> list[str]:
    """Every dotted path to a scalar field of these models (the union over attack kinds or
    regime kinds: which one applies depends on `kind`, which JSON Schema checks per member)."""
    found: set[str] = set()
    for model in models:
        found |= _paths(model, "", {"regime": regimes} if regimes else {})
    forbidden = FORBIDDEN[entry]
    return sorted(p for p in found if p not in forbidden and p.split(".")[0] not in forbidden)


def _paths(model: type[BaseModel], prefix: str, overrides: dict) -> set[str]:
    out: set[str] = set()
    for name, info in model.model_fields.items():
        key = info.alias or name
        if info.exclude:
            continue
        nested = overrides.get(key) or _models_in(info.annotation)
        if nested:
            for sub in nested:
                out |= _paths(sub, f"{prefix}{key}.", {})
        else:
            out.add(f"{prefix}{key}")
    return out


def _models_in(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Annotated, Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def _name_knobs(definition: dict, allowed: list[str]) -> None:
    sweep = definition["properties"]["sweep"]
    mapping = next(option for option in sweep["anyOf"] if option.get("type") == "object")
    mapping["propertyNames"] = {"enum": allowed}
    for values in mapping["patternProperties"].values():
        values["uniqueItems"] = True  # each member needs its own id


def render_schema() -> str:
    return dumps(spec_schema())


