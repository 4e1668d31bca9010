# One rule per planned job, whatever its stage (data, train, retrain, attack, evaluate, sanity,
# report): inputs, outputs, command and resources all come from the plan (clmrepro.plan), so no
# stage has a rule text of its own that could drift from the others.  What each stage does:
# docs/architecture.md; `python -m clmrepro.steps.<stage> JOB` runs it.
#
# A data job fetches a dataset once, checks it and decodes it (docs/data.md).  It is a local
# rule: on a cluster it runs on the submit host, which has network; the compute nodes, which may
# not, only read its prepared file (inputs.data).  There is one per dataset, whichever compiled
# specs read it (its job file is shared: workflow/compiled/_data/<key>/job.json).

# Inputs compared as `ancient` (inputs_of): the prepared datasets and their manifests (each job
# checks the bytes against the manifest's sha256 instead, clmrepro.steps.verified).
ANCIENT_INPUTS = ("data", "manifest", "manifests")


def inputs_of(job):
    """Declared inputs.  The prepared datasets and their manifests (ANCIENT_INPUTS) are compared
    as `ancient`: every compiled spec reads them, and `dvc commit`/`dvc pull` rewrite them in
    place, so their times say nothing of their bytes (checked against sha256s; DVC compares
    bytes).  Compared by time, running or restoring one spec would make every other spec's
    jobs look out of date."""
    return {name: ([ancient(p) for p in path] if isinstance(path, list) else ancient(path))
            if name in ANCIENT_INPUTS else path
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


# Longest chain of planned work first (clmrepro.plan.critical): the long training chains start
# before the short attacks that could fill in beside them.
PRIORITY = priorities(PLAN.jobs)

for job in PLAN.jobs:

    rule:
        name:
            job.rule_name
        localrule: job.stage == "data"
        input:
            job=job.job_file,
            **inputs_of(job),
        output:
            **outputs_of(job),
        log:
            job.log,
        benchmark:
            job.benchmark
        params:
            # Bound here: a `shell:` expression is evaluated when the job runs, after the
            # loop has moved on; params are evaluated now.
            cmd=shell_of(job),
        threads: job.resources["threads"]
        priority: PRIORITY[job.id]
        resources:
            **resources_of(job),
        shell:
            "{params.cmd} > {log} 2>&1"
