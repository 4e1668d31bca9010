# Fetch a dataset once, check it against torchvision's checksums, decode it: python -m
# clmrepro.steps.data JOB.  A local rule: on a cluster it runs on the submit host, which has
# network; the compute nodes, which may not, only read its prepared file (inputs.data).
# One rule per dataset, whichever compiled specs read it (its job file is shared:
# workflow/compiled/_data/<key>/job.json); inputs, outputs and command come from the plan.
for job in PLAN.stage("data"):

    rule:
        name:
            job.rule_name
        localrule: True
        input:
            job=job.job_file,
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
