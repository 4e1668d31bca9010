"""A rough compute estimate per job, for `clmrepro plan` and the executors' `runtime`.

Unit costs are seconds per image per forward+backward pass:
- LeNet5 on one CPU core: 1.2e-4 s (REFERENCE §6: 10 LeNet5 × 2 epochs × 4,000 images in 9.6 s).
- ResNet18 on one GPU: 5e-4 s (about 2,000 CIFAR images/s for training, an A100-class anchor).
A forward pass alone is counted as a third of that.  Numbers are within a factor of a few;
they size Slurm time limits and tell a user whether a spec is minutes or days.
"""

from __future__ import annotations

import math

PASS_SECONDS = {"lenet5": 1.2e-4, "resnet18": 5e-4}
FORWARD = 1 / 3


def _gradient_steps(attack: dict) -> float:
    params = attack["params"]
    kind = attack["kind"]
    if kind == "fgsm":
        return 1
    if kind == "eot-pgd":
        return params["steps"] * params["eot_iter"]
    if kind == "autoattack":
        # APGD-CE + APGD-T (9 targets) + FAB-T (9 targets) steps, Square queries are forwards.
        return params["n_restarts"] * 19 * params["steps"] + params["n_queries"] * FORWARD
    return params["steps"]


def estimate_seconds(job: dict) -> float:
    params = job["params"]
    stage = job["stage"]
    if stage == "report":
        return 10.0
    unit = PASS_SECONDS[params["architecture"]]
    size = params["population"]["size"]
    if stage in ("train", "retrain"):
        training = params["training"]
        passes = 1 + (params["adversarial"]["steps"] if params["adversarial"] else 0)
        n_train, n_test = params["dataset"]["n_train"], params["dataset"]["n_test"]
        per_epoch = n_train * passes + n_test * FORWARD
        return size * training["epochs"] * per_epoch * unit
    n = params["n_samples"]
    models = params["threat_models"]
    if stage == "attack":
        steps = _gradient_steps(params["attack"])
        # paper: one crafting submodel per image; transfer: every submodel crafts; adaptive:
        # every step differentiates through the whole population.
        crafts = sum({"paper": 1, "transfer": size, "adaptive": size}[m] for m in models)
        return n * steps * crafts * unit
    # evaluate: every submodel scores every crafted set; benign adds the saliency pairs.
    sets = sum({"paper": 1, "transfer": size, "adaptive": 1}[m] for m in models)
    saliency = params.get("saliency_samples", 0) * size if params["attack"] is None else 0
    return (n * sets * size * FORWARD + saliency) * unit


def runtime_minutes(seconds: float) -> int:
    """A generous limit for schedulers: three times the estimate, at least 10 minutes."""
    return max(10, math.ceil(3 * seconds / 60))


def memory_mb(architecture: str, stage: str) -> int:
    if stage == "report":
        return 2000
    return {"lenet5": 2000, "resnet18": 8000}[architecture]
