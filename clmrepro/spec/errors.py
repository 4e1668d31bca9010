"""Turn pydantic's error records into plain sentences with the allowed values."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from clmrepro.spec.models import SAFE_ID, SAFE_ID_HELP, BooleanGiven, Spec


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional wrappers."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp


def _field(model: type[BaseModel], key: object):
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info
    return None


def _kind_of(model: type[BaseModel]) -> str | None:
    info = model.model_fields.get("kind")
    return get_args(info.annotation)[0] if info and get_origin(info.annotation) is Literal else None


def display_path(loc: tuple) -> tuple[tuple, type[BaseModel] | None]:
    """The spec path of a pydantic ``loc`` (discriminator tags removed) and the model that holds
    its last key (for "did you mean")."""
    path: list = []
    tp: Any = Spec
    parent: type[BaseModel] | None = Spec
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            parent = tp
            info = _field(tp, part)
            path.append(part)
            tp = info.annotation if info else None
        elif get_origin(tp) is list:
            path.append(part)
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            tp = next((m for m in get_args(tp) if isinstance(m, type)
                       and issubclass(m, BaseModel) and _kind_of(m) == part), None)
        else:
            path.append(part)
            tp = None
    return tuple(path), parent


def _got(value: Any) -> str:
    text = repr(value)
    if isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: object, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def describe_error(error: dict, parent: type[BaseModel] | None) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    got = f"(got {_got(value)})"
    if kind == "extra_forbidden":
        keys = [info.alias or name for name, info in (parent.model_fields.items() if parent else [])]
        key = error["loc"][-1]
        return f"unknown key; {_suggest(key, keys)}allowed: {', '.join(keys)} (got '{key}')"
    if kind == "missing":
        return "required key is missing"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        sign = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
                "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()))
        return f"must be {sign} {bound:g} {got}" if isinstance(bound, float) else \
            f"must be {sign} {bound} {got}"
    if isinstance(value, BooleanGiven):
        # YAML 1.1 reads yes/no/on/off/true/false as booleans; pydantic would take true as 1
        return f"must be a number, not a boolean (got {value!r})"
    if kind == "finite_number":
        return f"must be a finite number {got}"
    if kind == "literal_error":
        allowed = [a.strip().strip("'") for a in str(ctx.get("expected", "")).replace(" or ", ",").split(",")]
        allowed = [a for a in allowed if a]
        hint = _suggest(value, allowed) if isinstance(value, str) else ""
        return f"{hint}must be one of {', '.join(allowed)} {got}"
    if kind == "union_tag_invalid":
        allowed = [a.strip().strip("'") for a in str(ctx.get("expected_tags", "")).split(",")]
        tag = ctx.get("tag", "")
        return f"unknown kind; {_suggest(tag, allowed)}must be one of {', '.join(allowed)} (got {tag!r})"
    if kind == "union_tag_not_found":
        return f"needs a `kind` key {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number {got}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false {got}"
    if kind in ("string_type",):
        return f"must be text {got}"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") == SAFE_ID:
        return f"must be a safe id ({SAFE_ID_HELP} characters) {got}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s) (got {ctx.get('actual_length')})"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s) (got {ctx.get('actual_length')})"
    if kind in ("list_type",):
        return f"must be a list {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping {got}"
    if kind == "value_error":  # our validators' own words, without pydantic's prefix
        short = repr(value) if isinstance(value, list) and len(repr(value)) <= 60 else _got(value)
        return f"{str(error['msg']).removeprefix('Value error, ')} (got {short})"
    return f"{error['msg']} {got}"
