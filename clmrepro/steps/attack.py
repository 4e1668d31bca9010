"""Attack step: craft the adversarial sets of one attack on one population.

``python -m clmrepro.steps.attack JOB.json``.  Reads ``inputs.population``, crafts every
threat model named in ``params.threat_models`` (``core.attacks``, ``core.adaptive``),
checks every set against the eps-ball and [0, 1], and saves one file
``outputs.adversarial`` so that evaluation can be repeated without attacking again:

    {"x": clean x, "y": y, "attack": {kind, id, eps, params},
     "paper": {"x_adv", "crafter", "crafting"}, "transfer": {"x_adv": (n, N, ...)},
     "adaptive": {"x_adv", "params": effective adaptive params}}   (those asked for)
"""

from __future__ import annotations

from typing import Any

from clmrepro.steps.common import Job, prepare_torch, show_progress, step_main
from clmrepro.steps.population import load_population

THREAT_MODELS = ("paper", "transfer", "adaptive")


def load_test_set(dataset: dict, n_samples: int | None):
    """The first ``n_samples`` test images in [0, 1] and their labels (core.data)."""
    from clmrepro.core.data import load_dataset, test_tensors

    return test_tensors(load_dataset(**dataset), n_samples)


def craft_sets(models, x, y, *, attack: dict, threat_models, crafting: str | None,
               batch_size: int,
               seed: int, device, progress: bool = False) -> dict[str, Any]:
    """Every threat model's adversarial set for one attack, each already checked."""
    from clmrepro.core.adaptive import adaptive_params, craft_adaptive
    from clmrepro.core.attacks import (
        assign_crafters,
        check_perturbation,
        craft_paper,
        craft_transfer,
    )
    from clmrepro.core.seeding import derive_seed, generator

    unknown = sorted(set(threat_models) - set(THREAT_MODELS))
    if unknown:
        raise ValueError(f"threat_models: unknown {unknown}; allowed {list(THREAT_MODELS)}")
    kind, eps, params = attack["kind"], float(attack["eps"]), attack["params"]
    common = dict(kind=kind, eps=eps, params=params, batch_size=batch_size, device=device,
                  progress=progress)
    sets: dict[str, Any] = {}
    if "paper" in threat_models:
        crafters = assign_crafters(len(x), len(models), mode=crafting, batch_size=batch_size,
                                   gen=generator(derive_seed(seed, "crafters")))
        x_adv = craft_paper(models, x, y, crafters=crafters, seed=derive_seed(seed, "paper"),
                            **common)
        check_perturbation(x, x_adv, eps)
        sets["paper"] = {"x_adv": x_adv, "crafter": crafters, "crafting": crafting}
    if "transfer" in threat_models:
        x_adv = craft_transfer(models, x, y, seed=derive_seed(seed, "transfer"), **common)
        for i in range(len(models)):
            check_perturbation(x, x_adv[i], eps)
        sets["transfer"] = {"x_adv": x_adv}
    if "adaptive" in threat_models:
        x_adv = craft_adaptive(models, x, y, seed=derive_seed(seed, "adaptive"), **common)
        check_perturbation(x, x_adv, eps)
        sets["adaptive"] = {"x_adv": x_adv, "params": adaptive_params(kind, eps, params)}
    return sets


def run_attack(job: Job) -> None:
    from clmrepro.core.checkpoints import atomic_torch_save

    device = prepare_torch(job)
    p = job["params"]
    attack = p["attack"]
    if attack is None:
        raise ValueError(f"{job['id']}: an attack job needs params.attack")
    _, models = load_population(job["inputs"]["population"], device)
    x, y = load_test_set(p["dataset"], p["n_samples"])
    sets = craft_sets(models, x, y, attack=attack, threat_models=p["threat_models"],
                      crafting=p.get("crafting"), batch_size=int(p["batch_size"]),
                      seed=int(job["seed"]), device=device, progress=show_progress())
    blob = {"x": x, "y": y, "attack": dict(attack), **sets}
    atomic_torch_save(blob, job["outputs"]["adversarial"])


def main(argv: list[str] | None = None) -> int:
    return step_main(run_attack, argv)


if __name__ == "__main__":
    raise SystemExit(main())
