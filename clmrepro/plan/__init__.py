"""The plan: spec -> jobs.  Importing this package stays torch- and pydantic-free so the
Snakefile loads fast; the compiler is ``clmrepro.plan.compile.compile_spec``."""

from clmrepro.plan.model import Plan, PlannedJob, load_plan

__all__ = ["Plan", "PlannedJob", "load_plan"]
