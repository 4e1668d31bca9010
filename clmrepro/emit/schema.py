"""The spec's JSON Schema for editors, generated from the pydantic models (never by hand)."""

from __future__ import annotations

from clmrepro.plan.model import dumps
from clmrepro.spec.models import Spec

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def spec_schema() -> dict:
    # snakemake.utils.validate and editors need "$schema" (REFERENCE §4); pydantic omits it.
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": DRAFT, "title": "clmrepro spec", **schema}


def render_schema() -> str:
    return dumps(spec_schema())
