"""The spec language: pydantic models, loading with line numbers, one error line per problem."""

from clmrepro.spec.loading import SpecError, load_spec, parse_spec
from clmrepro.spec.models import Spec

__all__ = ["Spec", "SpecError", "load_spec", "parse_spec"]
