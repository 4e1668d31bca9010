# Thin on purpose: `clmrepro compile SPEC` writes each spec's plan; workflow/rules/jobs.smk turns
# each planned job, whatever its stage, into one rule (same command as the spec's dvc.yaml).
# Every compiled spec runs unless `--config spec=NAME[,NAME]` picks some; `snakemake spec_NAME`
# builds one spec.
# Run: snakemake -j4 --resources gpu=2
# Several jobs per GPU (docs/cluster.md): --config slots_per_gpu=4 --resources gpu=8 (2 GPUs).
from clmrepro.compiled import load_plans, snakemake_plan, spec_rule_name
from clmrepro.plan.critical import priorities
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


include: "workflow/rules/jobs.smk"
