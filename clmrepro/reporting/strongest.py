"""The strongest attack, image by image: the per-image worst case over every attack run.

Carlini et al. 2019 ("On Evaluating Adversarial Robustness", docs/reference.md §8) ask for the
per-example minimum over all attacks: a defence is only as robust on an image as the best
attack on that image. For each (experiment, population, replicate, threat model, ε), over
every attack record except benign that carries ``per_image`` (each test image's expected
accuracy under random dispatch, decoded by reporting.build), the derived record's
``per_image`` is the image-by-image minimum and its MRA the mean. Every threat model's images
are the first N test images, so records of one threat model line up image by image; should
their N ever differ, the minimum is taken over the shortest.

The derived records (``attack: "strongest"``) join the scores records, so every table, cell,
interval and claim treats them like one more attack row, "strongest (per image)".
"""

from __future__ import annotations

import statistics

STRONGEST = "strongest"
CRAFTING = "per-image minimum over attacks"
_SHARED = ("experiment", "dataset", "architecture", "population", "regime", "eps",
           "threat_model", "n_submodels", "replicate")


def _eps_key(eps: object) -> str:
    # the precision artifact paths use (docs/architecture.md: format_eps)
    return f"{float(eps):.6g}"


def strongest_records(records: list[dict]) -> list[dict]:
    """One derived record per (experiment, population, replicate, threat model, ε) that has at
    least one attack record with per-image values; sorted by that key."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["attack"] in ("benign", STRONGEST) or r.get("per_image") is None:
            continue
        key = (r["experiment"], r["population"], int(r.get("replicate", 0)),
               r["threat_model"], _eps_key(r["eps"]))
        groups.setdefault(key, []).append(r)
    out = []
    for key in sorted(groups):
        found = sorted(groups[key], key=lambda r: r["attack"])
        n = min(len(r["per_image"]) for r in found)
        if n < 1:
            continue
        worst = [min(r["per_image"][j] for r in found) for j in range(n)]
        first = found[0]
        out.append({**{name: first.get(name) for name in _SHARED},
                    "attack": STRONGEST, "attack_kind": STRONGEST,
                    "derived_from": [r["attack"] for r in found],
                    "mra": statistics.fmean(worst), "per_submodel": None, "n_samples": n,
                    "paper": None, "attack_params": None, "transfer": None,
                    "crafting": CRAFTING, "per_image": worst})
    return out
