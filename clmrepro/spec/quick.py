"""The spec ``clmrepro evaluate`` writes for a quick look at your own population (issue 28).

The standard evaluation of this project, on your weights: the paper's five attacks (PGD run to
convergence), ARC, every threat model, the per-image strongest attack and the checks that
catch a failed attack, at the dataset's budget (MNIST ε = 0.3, CIFAR-10 ε = 8/255).  The spec
is plain YAML in specs/, to be edited and rerun like any other.  torch-free: the caller counts
the members.
"""

from __future__ import annotations

import yaml

# dataset → (experiment id, budget, attack steps and step size as the paper's runs use them)
SETTINGS = {"mnist-5k": ("mnist", 0.3, 0.01), "mnist": ("mnist", 0.3, 0.01),
            "cifar10": ("cifar10", 8 / 255, 2 / 255), "fake-cifar10": ("cifar10", 8 / 255, 2 / 255)}
KNOWN_ARCHITECTURES = ("lenet5", "resnet18")


def quick_spec(name: str, factory: str, weights: str, dataset: str, size: int, *,
               samples: int = 200, checks: int = 100, kwargs: dict | None = None) -> str:
    """The spec's YAML text."""
    if dataset not in SETTINGS:
        raise ValueError(f"dataset must be one of {', '.join(SETTINGS)} (got {dataset!r})")
    experiment, eps, alpha = SETTINGS[dataset]
    architecture = (factory if factory in KNOWN_ARCHITECTURES else
                    {"kind": "python", "factory": factory, "kwargs": dict(kwargs or {})})
    adaptive = min(samples, 100)
    attacks = [{"kind": "fgsm", "eps": [eps]},
               {"kind": "pgd", "eps": [eps], "steps": 40, "alpha": alpha,
                "converge": {"tolerance": 0.5, "max_steps": 320}},
               {"kind": "autoattack", "eps": [eps]},
               {"kind": "mifgsm", "eps": [eps], "steps": 5, "decay": 1.0},
               {"kind": "eot-pgd", "eps": [eps]},
               {"kind": "arc", "eps": [eps]}]
    spec = {
        "name": name,
        "description": f"The standard evaluation of your own population {weights} "
                       f"({architecture if isinstance(architecture, str) else factory}, "
                       f"{size} member(s)) on {dataset}: written by `clmrepro evaluate`; edit "
                       "and rerun it like any spec.",
        "seed": 0, "device": "auto", "threads": 1,
        "experiments": [{
            "id": experiment,
            "dataset": {"name": dataset},
            "architecture": architecture,
            "populations": [{"id": "yours", "size": size,
                             "regime": {"kind": "pretrained", "weights": weights}}],
            "evaluation": {
                "n_samples": samples, "adaptive_samples": adaptive,
                "transfer_samples": min(samples, 100), "batch_size": 100,
                "threat_models": ["paper", "transfer", "adaptive"] if size > 1
                else ["paper", "adaptive"],
                "attacks": attacks,
                "sanity": {"samples": min(checks, samples)}}}]}
    header = ("# yaml-language-server: $schema=../workflow/schemas/spec.schema.json\n"
              "# Written by `clmrepro evaluate` (docs/bring-your-own.md): the standard "
              "evaluation of\n# your own population. Edit it and run `clmrepro run` on it again.\n")
    return header + yaml.safe_dump(spec, sort_keys=False, width=100)
