"""Sanity step: the evidence that the grid's attacks did their job on one population.

``python -m clmrepro.steps.sanity JOB.json``.  Reads ``inputs.population``, runs the checks
of ``params.sanity`` (their modules in ``clmrepro.kinds.checks``, the tensors in
``core.attacks.sanity``) on the first ``samples`` test images for each
of its threat models, and writes ``outputs.sanity`` (docs/sanity.md has the layout and the
rules the report applies).  The paper protocol's crafting submodels are drawn as the attack
jobs draw them (one per batch or per sample, from the job's seed).
"""

from __future__ import annotations

import sys

from clmrepro.steps.common import Job, prepare_torch, show_progress, step_main
from clmrepro.steps.scoring import load_test_set, runtime_for
from clmrepro.steps.verified import consumed

SCHEMA_VERSION = 1


def run_sanity(job: Job) -> None:
    from tqdm import tqdm

    from clmrepro.core.attacks.sanity import PgdSettings, SanitySettings, check_threat
    from clmrepro.core.attacks.work import assign_crafters
    from clmrepro.core.checkpoints import atomic_write_json
    from clmrepro.core.seeding import derive_seed, generator
    from clmrepro.kinds import checks as check_kinds
    from clmrepro.steps.population import population_of

    device = prepare_torch(job)
    p = job["params"]
    s = p["sanity"]
    runtime = runtime_for(job, device)
    _, models = population_of(job, device)
    models = runtime.prepare(models)
    x, y = load_test_set(p["dataset"], int(s["samples"]), job["inputs"].get("data"))
    eps = float(s["eps"])
    settings = SanitySettings(
        jobs=check_kinds.jobs(s["checks"]), threat_models=tuple(s["threat_models"]),
        pgd=PgdSettings(eps, float(s["pgd"]["alpha"]), int(s["pgd"]["steps"]),
                        bool(s["pgd"]["random_start"])),
        params=s, crafting=p.get("crafting", "per-batch"), batch_size=int(p["batch_size"]))
    seed = int(job["seed"])
    crafters = assign_crafters(len(x), len(models), mode=settings.crafting,
                               batch_size=settings.batch_size,
                               gen=generator(derive_seed(seed, "crafters")))
    threats = {}
    for threat in settings.threat_models:
        batches = -(-len(x) // settings.batch_size) * (len(models) if threat == "paper" else 1)
        with tqdm(total=batches, desc=f"checks {threat}", disable=not show_progress()) as bar:
            threats[threat] = check_threat(models, x, y, threat=threat, settings=settings,
                                           seed=derive_seed(seed, threat), runtime=runtime,
                                           crafters=crafters, on_unit=lambda: bar.update(1))
        print(f"[clmrepro] {job['id']}: {threat} checks done on {len(x)} images",
              file=sys.stderr, flush=True)
    population = p["population"]
    atomic_write_json(job["outputs"]["sanity"], {
        "schema_version": SCHEMA_VERSION, "experiment": job.get("experiment"),
        "population": population["id"], "regime": population["regime"],
        "replicate": int(p.get("replicate", 0)), "n_submodels": len(models), "eps": eps,
        "n_samples": len(x), "checks": list(s["checks"]),
        "crafter": crafters.tolist(), "threat_models": threats, "consumed": consumed(job)})


def main(argv: list[str] | None = None) -> int:
    return step_main(run_sanity, argv)


if __name__ == "__main__":
    raise SystemExit(main())
