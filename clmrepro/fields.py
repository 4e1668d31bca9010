"""The field types every spec model is built from: ids, budgets, counts, sweeps, the threat
models and the strict base model (unknown keys refused, booleans never read as numbers).

Layer 0 (pydantic only): the spec models (``clmrepro.spec``) and the per-kind modules of
``clmrepro.kinds`` (an attack, a regime, a check: each one module holding its own spec model)
both build on these, so a kind can define its knobs without importing the spec package.
"""

from __future__ import annotations

import types
from fractions import Fraction
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

# '.' is allowed so that sweep members read like `clm-alpha0.05` (clmrepro.spec.sweeps); an id
# is one path component, and no component can be '..' because an id starts with [a-z0-9].
SAFE_ID = r"^[a-z0-9][a-z0-9._-]{0,39}$"
SAFE_ID_HELP = ("lowercase letters, digits, '.', '-' and '_', starting with a letter or digit, "
                "at most 40")
FRACTION = r"^\s*0*[1-9][0-9]*\s*/\s*0*[1-9][0-9]*\s*$"  # 8/255; never 0/n or n/0


def _fraction(value: object) -> object:
    """Accept "8/255" as the paper writes CIFAR-10 budgets; YAML has no fractions."""
    if isinstance(value, str) and "/" in value:
        top, _, bottom = value.partition("/")
        try:
            return float(Fraction(int(top.strip()), int(bottom.strip())))
        except (ValueError, ZeroDivisionError):
            return value
    return value


# Input channels of each dataset's 32×32 images (core.data): the one table every layer reads.
DATASET_CHANNELS = {"mnist": 1, "mnist-5k": 1, "cifar10": 3, "fake-cifar10": 3}

# The threat models (the paper's protocol, transfer, adaptive: docs/architecture.md), in the order
# every table shows them: their one home, torch-free, for the spec, the science and the reports.
THREAT_MODELS = ("paper", "transfer", "adaptive")
ThreatModel = Literal[THREAT_MODELS]

SafeId = Annotated[str, Field(pattern=SAFE_ID, description=f"an id: {SAFE_ID_HELP}")]
_UnitNumber = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
# The editor schema (clmrepro.emit.schema) must accept what `clmrepro validate` accepts: a
# number in (0, 1] or a fraction text such as '8/255' (json_schema_input_type), with the bounds
# written once here.
_UnitValue = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False), BeforeValidator(
    _fraction, json_schema_input_type=Union[_UnitNumber, Annotated[str, Field(pattern=FRACTION)]])]
Budget = _UnitValue
Step = _UnitValue
Count = Annotated[int, Field(ge=1, le=1_000_000)]

# A sweep (clmrepro.spec.sweeps): knob path -> values, expanded into one member per combination.
KNOB_PATH = r"^[a-z_]+(\.[a-z_]+)*$"
MAX_SWEEP_VALUES = 100
SweepValue = Union[float, bool, str, None]
Sweep = dict[Annotated[str, Field(pattern=KNOB_PATH)],
             Annotated[list[SweepValue], Field(min_length=1, max_length=MAX_SWEEP_VALUES)]]
SWEEP_HELP = ("grid over this entry's knobs, e.g. {regime.alpha: [0.01, 0.1], regime.delta: "
              "[0.05, 0.1]}: one member per combination, with the id {id}-alpha0.01-delta0.05 "
              "(docs/lab.md); null → no sweep")


def _numeric(annotation: Any) -> tuple[bool, bool]:
    """(a number is allowed, a list of numbers is allowed) for a field's annotation."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _numeric(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        if bool in get_args(annotation):
            return False, False  # a field that takes a boolean takes one as it is
        found = [_numeric(arg) for arg in get_args(annotation)]
        return any(f[0] for f in found), any(f[1] for f in found)
    if origin is list:
        return False, _numeric(get_args(annotation)[0])[0]
    return annotation in (int, float), False


class BooleanGiven:
    """A boolean where a number belongs.  pydantic's lax mode reads true as 1, so `alpha: yes`
    would silently mean α = 1; put in place of the boolean, this fails the field's number check
    at the field's own path, and ``errors.describe_error`` names it."""

    def __init__(self, value: bool):
        self.value = value

    def __repr__(self) -> str:
        return "true" if self.value else "false"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, info in cls.model_fields.items():
            number, numbers = _numeric(info.annotation)
            for key in {name, info.alias or name} & set(data):
                value = data[key]
                if number and isinstance(value, bool):
                    data[key] = BooleanGiven(value)
                elif numbers and isinstance(value, list):
                    data[key] = [BooleanGiven(v) if isinstance(v, bool) else v for v in value]
        return data
