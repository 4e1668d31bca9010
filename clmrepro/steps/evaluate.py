"""Evaluate step: score a population on clean data, or re-score a saved adversarial file.

``python -m clmrepro.steps.evaluate JOB.json``.  With ``params.attack`` null it writes the
benign record (Table 1) to ``outputs.scores`` and ``outputs.analysis`` (Fig. 6 saliency
cosines, conv1 spread).  With ``params.attack`` set it reads ``inputs.adversarial``
(written by the attack step, which scores its own sets the same way) and writes one record per
threat model.  The scoring itself is ``steps.scoring``; record and file formats:
docs/architecture.md.  ``paper`` stays null; the report step fills it.

Free of torchattacks, as ``steps.scoring`` is: scoring needs forward passes only.
"""

from __future__ import annotations

from clmrepro.steps.common import Job, prepare_torch, step_main
from clmrepro.steps.scoring import attack_records, benign_scores, runtime_for, write_scores


def run_evaluate(job: Job) -> None:
    from clmrepro.core.checkpoints import atomic_write_json, safe_load
    from clmrepro.steps.population import population_of

    device = prepare_torch(job)
    runtime = runtime_for(job, device)
    _, models = population_of(job, device)
    models = runtime.prepare(models)
    if job["params"]["attack"] is None:
        records, analysis = benign_scores(job, models, runtime)
        atomic_write_json(job["outputs"]["analysis"], analysis)
    else:
        records = attack_records(job, models, safe_load(job["inputs"]["adversarial"]), runtime)
    write_scores(job["outputs"]["scores"], with_machine(records, device))


def with_machine(records: list[dict], device) -> list[dict]:
    """Each record with the GPU and its effective fp32 matmul/conv precision on CUDA
    (core.devices.record_machine); unchanged on the CPU."""
    from clmrepro.core import devices

    extra = devices.record_machine(device)
    return [{**record, **extra} for record in records]


def main(argv: list[str] | None = None) -> int:
    return step_main(run_evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
