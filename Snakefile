# Thin on purpose: `clmrepro compile SPEC` writes the plan; the rules below turn each planned
# job into one rule (same command as dvc.yaml).  Run: snakemake -j4 --resources gpu=2
from clmrepro.plan import load_plan
from clmrepro.runlock import hold_for_snakemake


configfile: "workflow/compiled/config.yaml"


PLAN = load_plan(config["plan"])


onstart:
    # One run per checkout (clmrepro.runlock): a second run stops here with one line, before any
    # job starts; under `clmrepro run` the lock is handed down.  Not run for --dry-run.
    hold_for_snakemake()


def outputs_of(job):
    """Declared outputs, with folders (the report's figures) marked as such."""
    return {name: directory(path) if name in job.directories else path
            for name, path in job.outputs.items()}


def resources_of(job):
    return {key: job.resources[key] for key in ("gpu", "mem_mb", "runtime")}


rule all:
    input:
        PLAN.final_outputs(),
    default_target: True


include: "workflow/rules/train.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
