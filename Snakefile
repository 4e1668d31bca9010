# Thin on purpose: `clmrepro compile SPEC` writes each spec's plan; the rules below turn each
# planned job into one rule (same command as the spec's dvc.yaml).  Every compiled spec runs
# unless `--config spec=NAME[,NAME]` picks some; `snakemake spec_NAME` builds one spec.
# Run: snakemake -j4 --resources gpu=2
from clmrepro.compiled import load_plans, snakemake_plan, spec_rule_name


configfile: "workflow/compiled/config.yaml"


PLANS = load_plans(config.get("spec", "all"))
PLAN = snakemake_plan(PLANS)


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


for _spec, _plan in PLANS.items():

    rule:
        name:
            spec_rule_name(_spec)
        input:
            _plan.final_outputs(),


include: "workflow/rules/train.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
