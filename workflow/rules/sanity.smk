# The checks that catch a failed attack (docs/sanity.md): one job per population and
# replicate, python -m clmrepro.steps.sanity JOB (GPU, slot-wrapped).
# One rule per planned job; inputs, outputs and command come from the plan (clmrepro.plan).
for job in PLAN.stage("sanity"):

    rule:
        name:
            job.rule_name
        input:
            job=job.job_file,
            **job.inputs,
        output:
            **outputs_of(job),
        log:
            job.log,
        benchmark:
            job.benchmark
        params:
            # Bound here: a `shell:` expression is sanityd when the job runs, after the
            # loop has moved on; params are sanityd now.
            cmd=shell_of(job),
        threads: job.resources["threads"]
        resources:
            **resources_of(job),
        shell:
            "{params.cmd} > {log} 2>&1"
