# Thin on purpose: `clmrepro compile SPEC` writes each spec's plan; the rules below turn each
# planned job into one rule (same command as the spec's dvc.yaml).  Every compiled spec runs
# unless `--config spec=NAME[,NAME]` picks some; `snakemake spec_NAME` builds one spec.
# Run: snakemake -j4 --resources gpu=2
# Several jobs per GPU (docs/cluster.md): --config slots_per_gpu=4 --resources gpu=8 (2 GPUs).
from clmrepro.compiled import load_plans, snakemake_plan, spec_rule_name
from clmrepro.runlock import hold_for_snakemake


configfile: "workflow/compiled/config.yaml"


PLANS = load_plans(config.get("spec", "all"))
PLAN = snakemake_plan(PLANS)
# Slots per GPU: a LeNet5-sized job takes one slot, a ResNet18 job every slot of its GPU
# (plan resources gpu_whole); the `gpu` resource counts slots.  clmrepro.steps.gpu_slot
# enforces the same split per physical GPU.
SLOTS_PER_GPU = int(config.get("slots_per_gpu", 1))
if not 1 <= SLOTS_PER_GPU <= 64:
    raise ValueError(f"config slots_per_gpu must be from 1 to 64 (got {SLOTS_PER_GPU})")


onstart:
    # One run per checkout (clmrepro.runlock): a second run stops here with one line, before any
    # job starts; under `clmrepro run` the lock is handed down.  Not run for --dry-run.
    hold_for_snakemake()


def inputs_of(job):
    """Declared inputs.  The prepared datasets and their manifests (inputs data, manifests) are
    compared as `ancient`: every compiled spec reads them, and `dvc commit`/`dvc pull` rewrite
    them in place, so their times say nothing of their bytes (checked against sha256s; DVC
    compares bytes).  Compared by time, running or restoring one spec would make every other
    spec's jobs look out of date."""
    return {name: ([ancient(p) for p in path] if isinstance(path, list) else ancient(path))
            if name in ("data", "manifests") else path
            for name, path in job.inputs.items()}


def outputs_of(job):
    """Declared outputs, with folders (the report's figures) marked as such."""
    return {name: directory(path) if name in job.directories else path
            for name, path in job.outputs.items()}


def resources_of(job):
    slots = SLOTS_PER_GPU if job.resources.get("gpu_whole") else 1
    return {"gpu": job.resources["gpu"] * slots, "mem_mb": job.resources["mem_mb"],
            "runtime": job.resources["runtime"]}


def shell_of(job):
    """The plan's command (the same as dvc.yaml's), told the slot count when it takes a GPU."""
    prefix = f"CLMREPRO_SLOTS_PER_GPU={SLOTS_PER_GPU} " if job.resources["gpu"] else ""
    return prefix + job.cmd


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


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/sanity.smk"
include: "workflow/rules/report.smk"
