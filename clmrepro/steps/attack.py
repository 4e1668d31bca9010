"""Attack step: craft one attack's adversarial sets on one population, and score them.

``python -m clmrepro.steps.attack JOB.json``.  Reads ``inputs.population``, crafts every
threat model in ``params.threat_models`` on the first N test images (N per threat model:
``plan.samples.images_per_threat``), checks every chunk against the eps-ball and
[0, 1], and writes

- ``outputs.adversarial``: the sets, so that they can be re-scored without attacking again
  (``steps.evaluate``)::

    {"x": clean x (the largest N), "y": y, "attack": {kind, id, eps, params},
     "paper": {"x_adv", "crafter", "crafting"}, "transfer": {"x_adv": (n, N, ...)},
     "adaptive": {"x_adv", "params": effective adaptive params}}   (those asked for)

- ``outputs.scores`` (when the job names it): one record per threat model
  (``steps.scoring.attack_records``, as ``steps.evaluate`` re-scores; docs/architecture.md).

Execution (``params.execution``, ``core.runtime``): ``population`` sequential
(torchattacks, one submodel at a time) or batched (``core.attacks.batched``; AutoAttack and
the random-dispatch adaptive attacks stay sequential); ``precision``; ``memory_format``.

Resumable (issue 12): finished chunks go to the job's state folder
(:func:`attack_state_dir`), keyed by a fingerprint of everything that determines the
result (``core.attacks.state``); a rerun after a crash or SIGKILL continues from them and
writes the same bytes as an uninterrupted run.  ``should_stop`` is asked between chunks;
when it says stop, the step raises ``Interrupted`` naming the state folder.  The folder is
removed once the outputs are written.
"""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

from clmrepro.core.interrupt import StopCheck
from clmrepro.kinds import attacks as attack_kinds
from clmrepro.steps import common
from clmrepro.steps.common import Job, prepare_torch, show_progress, step_main
from clmrepro.steps.evaluate import with_machine
from clmrepro.plan.samples import images_per_threat
from clmrepro.steps.scoring import AVERAGE_SET, load_test_set, rules_of, runtime_for

# Bump when a change of this code changes the adversarial sets: old state is then stale.
# 2: AutoAttack rand on a population runs our expected-accuracy APGD (issue 26).
STATE_FORMAT = 2


def attack_state_dir(job: Job) -> Path:
    """The job's state folder (``plan.paths.attack_state_dir_of``): beside the population's
    training state, per replicate where the plan has replicates.  Not a declared output:
    Snakemake deletes those of a failed job (docs/reference.md §4)."""
    from clmrepro.plan import paths

    p = job["params"]
    attack = p["attack"]
    return Path(paths.attack_state_dir_of(
        str(job["inputs"]["population"]), str(attack.get("id", attack["kind"])),
        float(attack["eps"]), str(job["spec"]), str(job["experiment"]),
        str(p["population"]["id"])))


def _fingerprint(job: Job, runtime, population_path: str, x, y) -> dict:
    """Everything that determines the adversarial sets; output paths and the job id do not."""
    from importlib.metadata import version

    import torch

    from clmrepro.core.attacks.state import tensor_digest
    from clmrepro.core.digest import content_sha256

    return {
        "format": STATE_FORMAT,
        "params": job["params"],
        "seed": int(job["seed"]),
        "threads": int(job.get("threads", 1)),
        "population": content_sha256(population_path),
        "test_data": tensor_digest(x, y),
        "runtime": runtime.describe(),
        "versions": {"torch": torch.__version__, "torchattacks": version("torchattacks")},
    }


def run_attack(job: Job, should_stop: StopCheck | None = None) -> None:
    from clmrepro.core.attacks.state import ChunkStore
    from clmrepro.core.attacks.threats import craft_sets
    from clmrepro.core.checkpoints import atomic_torch_save
    from clmrepro.steps.scoring import attack_records, write_scores
    from clmrepro.steps.population import population_of

    device = prepare_torch(job)
    p = job["params"]
    attack = p["attack"]
    if attack is None:
        raise ValueError(f"{job['id']}: an attack job needs params.attack")
    runtime = runtime_for(job, device)
    threat_models = list(p["threat_models"])
    sizes = images_per_threat(p)
    population_path = job["inputs"]["population"]
    _, models = population_of(job, device)
    models = runtime.prepare(models)
    largest = None if None in sizes.values() else max(sizes.values(), default=0)
    x, y = load_test_set(p["dataset"], largest, job["inputs"].get("data"))
    state_dir = attack_state_dir(job)
    store = ChunkStore(state_dir, _fingerprint(job, runtime, population_path, x, y))
    saved = store.names()
    if saved:
        print(f"[clmrepro] {job['id']}: resuming from {len(saved)} saved chunks in {store.where}",
              file=sys.stderr, flush=True)
    sets = craft_sets(models, x, y, kind=attack_kinds.get(attack["kind"]), attack=attack,
                      threat_models=threat_models, sizes=sizes,
                      crafting=p.get("crafting"), batch_size=int(p["batch_size"]),
                      seed=int(job["seed"]), runtime=runtime, store=store,
                      should_stop=should_stop, progress=show_progress(),
                      measure=ladder_measure(job, models, y, runtime))
    blob = {"x": x, "y": y, "attack": dict(attack), **sets}
    if rules_of(p) and "adaptive" in threat_models:
        blob[AVERAGE_SET] = averaged_adaptive_set(job, models, x, y, sizes["adaptive"], runtime,
                                                  _fingerprint(job, runtime, population_path, x, y),
                                                  should_stop)
    atomic_torch_save(blob, job["outputs"]["adversarial"])
    if "scores" in job["outputs"]:  # the fused attack job (docs/architecture.md, "Jobs and replicates")
        write_scores(job["outputs"]["scores"],
                     with_machine(attack_records(job, models, blob, runtime), device))
    store.remove()
    shutil.rmtree(_average_state_dir(job), ignore_errors=True)


def ladder_measure(job: Job, models, y, runtime):
    """A set's MRA as its scores record will give it (``steps.scoring``), for the ladder of
    an attack run to convergence (``core.attacks.ladder``)."""
    def measure(threat: str, x_adv) -> float:
        from clmrepro.core.metrics import (correctness, model_robustness_average,
                                           transfer_correctness, transfer_summary)

        bs = int(job["params"]["batch_size"])
        if threat == "transfer":
            correct = transfer_correctness(models, x_adv, y[:x_adv.shape[1]], batch_size=bs,
                                           device=runtime.device, runtime=runtime)
            per = transfer_summary(correct.double().mean(dim=-1))["per_submodel"]
        else:
            correct = correctness(models, x_adv, y[:len(x_adv)], batch_size=bs,
                                  device=runtime.device, runtime=runtime)
            per = correct.double().mean(dim=1).tolist()
        return float(model_robustness_average([float(v) for v in per]))
    return measure


def _average_state_dir(job: Job) -> Path:
    from clmrepro.plan import paths

    return Path(paths.average_state_dir(str(attack_state_dir(job))))


def averaged_adaptive_set(job: Job, models, x, y, size: int | None, runtime, fingerprint: dict,
                          should_stop: StopCheck | None) -> dict:
    """The adaptive threat model of the deterministic inference rules (core.ensemble): the
    attack, white-box, on the averaged population as one model (AutoAttack in its own
    ``version``; EOT-PGD is PGD on a deterministic model), crafted one model at a time."""
    from dataclasses import replace

    from clmrepro.core.attacks.state import ChunkStore
    from clmrepro.core.attacks.threats import craft_sets
    from clmrepro.core.ensemble import AveragedPopulation
    from clmrepro.core.seeding import derive_seed

    store = ChunkStore(_average_state_dir(job), {**fingerprint, "target": "average"})
    averaged = AveragedPopulation(models).eval()
    attack = job["params"]["attack"]
    if "converge" in attack["params"]:  # the averaged set runs the fixed steps (no ladder)
        attack = {**attack, "params": {k: v for k, v in attack["params"].items()
                                       if k != "converge"}}
    sets = craft_sets([averaged], x, y, kind=attack_kinds.get(attack["kind"]), attack=attack,
                      threat_models=["paper"],
                      sizes={"paper": size}, crafting="per-batch",
                      batch_size=int(job["params"]["batch_size"]),
                      seed=derive_seed(int(job["seed"]), "average"),
                      runtime=replace(runtime, batched=False), store=store,
                      should_stop=should_stop, progress=show_progress())
    return {"x_adv": sets["paper"]["x_adv"], "target": "average"}


def main(argv: list[str] | None = None) -> int:
    return step_main(functools.partial(run_attack, should_stop=common.stop_requested), argv)


if __name__ == "__main__":
    raise SystemExit(main())
