# Craft the adversarial sets of one attack at one eps (every threat model) and score them.
# One rule per planned job; inputs, outputs and command come from the plan (clmrepro.plan).
for job in PLAN.stage("attack"):

    rule:
        name:
            job.rule_name
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
        resources:
            **resources_of(job),
        shell:
            "{params.cmd} > {log} 2>&1"
