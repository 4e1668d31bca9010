"""The strongest attack, image by image: the per-image worst case over every attack that ran.

Carlini et al. 2019 ("On Evaluating Adversarial Robustness", docs/reference.md §8) ask for the
per-example minimum over all attacks: a defence is only as robust on an image as the best
attack on that image (issue 26, Build item 1).  For each (experiment, population, replicate,
threat model, ε) the minimum is taken over

- every attack record of the grid except benign that carries ``per_image`` (each test image's
  expected accuracy under random dispatch, decoded by reporting.build), ARC included, and
- every attack of the sanity job's check file of that population and replicate whose section
  is that threat model and whose ε is that ε (doubled steps ``pgd-2x-steps``, restarts
  ``pgd-restarts``, Square, noise, the margin-loss ``pgd-margin``, the check's own PGD; not
  ``pgd-unbounded``, whose ε is 1).  They enter under the name ``check:<name>``
  (:data:`CHECK_PREFIX`), so the check's PGD never merges with the grid's.

Every attack scores the first N test images of its job, so the tables line up image by image;
the minimum is taken over the first N they all share (the shortest), and the derived record
states that N (``n_samples``) and the attacks it took the minimum over (``derived_from``).
A check file adds to a group the grid opened; it opens none of its own (it lacks the dataset
and architecture a record carries).

The derived records (``attack: "strongest"``) join the scores records, so every table, cell,
interval and claim treats them like one more attack row, "strongest (per image)".
:func:`mark_upper_bounds` then marks each one whose population and threat model a check flags
(reporting.robustness results): its number is an upper bound (``upper_bound``, ``flagged_by``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from clmrepro.kinds.checks.base import FLAG, as_record

STRONGEST = "strongest"
CRAFTING = "per-image minimum over attacks"
CHECK_PREFIX = "check:"
_SHARED = ("experiment", "dataset", "architecture", "population", "regime", "eps",
           "threat_model", "n_submodels", "replicate")


def _eps_key(eps: object) -> str:
    # the precision artifact paths use (docs/architecture.md: format_eps)
    return f"{float(eps):.6g}"


def _key(record: dict) -> tuple:
    return (record["experiment"], record["population"], int(record.get("replicate", 0)),
            record["threat_model"], _eps_key(record["eps"]))


def check_attack_records(check_files: Iterable[dict]) -> list[dict]:
    """Every attack of the decoded check files (reporting.sanity.decode_check_file) as a
    record (kinds.checks.base.as_record) named ``check:<name>``, at the ε its params name
    (the file's ε when they name none)."""
    out = []
    for f in check_files:
        for threat, section in f["threat_models"].items():
            for name, attack in section["attacks"].items():
                eps = attack["params"].get("eps", f.get("eps"))
                if eps is None or not attack["per_image"]:
                    continue
                record = as_record(f, threat, CHECK_PREFIX + name, attack["per_image"])
                out.append({**record, "eps": float(eps)})
    return out


def strongest_records(records: list[dict], check_files: Sequence[dict] = ()) -> list[dict]:
    """One derived record per (experiment, population, replicate, threat model, ε) that has at
    least one grid attack record with per-image values; sorted by that key.  The check files'
    attacks at that key join the minimum (module docstring)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["attack"] in ("benign", STRONGEST) or r.get("per_image") is None:
            continue
        groups.setdefault(_key(r), []).append(r)
    for r in check_attack_records(check_files):
        if _key(r) in groups:
            groups[_key(r)].append(r)
    out = []
    for key in sorted(groups):
        found = sorted(groups[key], key=lambda r: r["attack"])
        n = min(len(r["per_image"]) for r in found)
        if n < 1:
            continue
        worst = [min(r["per_image"][j] for r in found) for j in range(n)]
        first = next(r for r in found if not r["attack"].startswith(CHECK_PREFIX))
        out.append({**{name: first.get(name) for name in _SHARED},
                    "attack": STRONGEST, "attack_kind": STRONGEST,
                    "derived_from": [r["attack"] for r in found],
                    "mra": statistics.fmean(worst), "per_submodel": None, "n_samples": n,
                    "paper": None, "attack_params": None, "transfer": None,
                    "crafting": CRAFTING, "per_image": worst,
                    "upper_bound": False, "flagged_by": []})
    return out


def mark_upper_bounds(records: list[dict], results: Iterable) -> list[dict]:
    """The records, each strongest one whose (experiment, population, threat model) a check
    flags (reporting.sanity.CheckResult) marked ``upper_bound: True`` with the flagging
    checks' ids in ``flagged_by`` (registry order), at every ε: a flag says an attack of
    that population and threat model may have failed, and the minimum is only as low as its
    attacks reach."""
    flags: dict[tuple, list[str]] = {}
    for r in results:
        if r.verdict == FLAG:
            found = flags.setdefault((r.experiment, r.population, r.threat_model), [])
            if r.check not in found:
                found.append(r.check)
    out = []
    for r in records:
        if r["attack"] == STRONGEST:
            by = flags.get((r["experiment"], r["population"], r["threat_model"]), [])
            r = {**r, "upper_bound": bool(by), "flagged_by": list(by)}
        out.append(r)
    return out
