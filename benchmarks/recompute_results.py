"""Recompute a report of record's numbers from its published files (issue 27).

    python -m benchmarks.recompute_results docs/results/mnist5k          # check
    python -m benchmarks.recompute_results docs/results/mnist5k --lines  # the README's tables

Reads only ``metrics.json`` and ``per_image.csv.gz`` of a results folder, and recomputes, with
code of its own (numpy and scipy's t quantiles, not clmrepro.reporting):

1. every cell of metrics.json that has per-image data: the mean over replicates of each
   replicate's mean per-image expected accuracy, and its 95% interval (Student t over the K
   replicates; Wilson over the images when K = 1);
2. every claim row of metrics.json that compares two populations on per-image data (the
   paper protocol's rows and the strongest-attack reading): the difference paired by replicate
   and its 95% t interval;
3. the lines the folder's README quotes (:func:`readme_lines`): the one-model table, the
   strongest-row table and the convergence table, rendered from those recomputed numbers.

It prints every disagreement (over 1e-6 for a number) and exits 1 if there is one; the test
tests/unit/test_results_recompute.py runs it on every results folder that publishes per-image
data and checks that each README line it renders appears in that README, word for word.
"""

from __future__ import annotations

import argparse
import gzip
import csv
import io
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

TOLERANCE = 1e-6
ROUNDED = 5e-7          # metrics.json rounds interval ends to 6 decimals
LEVEL = 0.95
STRONGEST = "strongest"
LABELS = {"ulm": "ULM", "clm": "CLM", "ulm-adv": "ULM-Adv", "clm-adv": "CLM-Adv",
          "one-model": "one model", "one-model-adv": "one model (PGD-trained)",
          "adp": "ADP", "gal": "GAL", "trs": "TRS", "dverge": "DVERGE"}
ATTACK_LABELS = {"fgsm": "FGSM", "pgd": "PGD", "autoattack": "AutoAttack", "mifgsm": "MI-FGSM",
                 "eot-pgd": "PGD-EOT", "arc": "ARC", STRONGEST: "strongest"}


# --- reading ----------------------------------------------------------------------------------

def read_rows(folder: Path) -> list[dict]:
    """The per-image file's rows, each image's value an exact fraction turned to a float."""
    text = gzip.decompress((folder / "per_image.csv.gz").read_bytes()).decode("utf-8")
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        d = int(row["denominator"])
        values = np.array([int(k) for k in row["numerators"].split()], dtype=np.float64) / d
        rows.append({**row, "replicate": int(row["replicate"]), "eps": float(row["eps"]),
                     "values": values})
    return rows


def group(rows: list[dict], experiment: str, population: str, threat: str, eps: float,
          attack: str, inference: str = "random") -> dict[int, np.ndarray]:
    """replicate → per-image values of one cell."""
    return {r["replicate"]: r["values"] for r in rows
            if (r["experiment"], r["population"], r["threat_model"], r["attack"],
                r["inference"]) == (experiment, population, threat, attack, inference)
            and abs(r["eps"] - eps) < 5e-4}


# --- statistics, written out here ---------------------------------------------------------------

def t_interval(values: list[float], bounds=(0.0, 1.0)) -> tuple[float, float, float]:
    m = len(values)
    mean = float(np.mean(values))
    half = stats.t.ppf(0.5 + LEVEL / 2, m - 1) * float(np.std(values, ddof=1)) / math.sqrt(m)
    return mean, max(bounds[0], mean - half), min(bounds[1], mean + half)


def wilson(p: float, n: int) -> tuple[float, float, float]:
    z2 = stats.norm.ppf(0.5 + LEVEL / 2) ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = math.sqrt(z2) / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def cell(found: dict[int, np.ndarray]) -> tuple[float, float, float] | None:
    """Mean over replicates and its 95% interval."""
    if not found:
        return None
    means = [float(v.mean()) for _, v in sorted(found.items())]
    if len(means) >= 2:
        return t_interval(means)
    (values,) = found.values()
    return wilson(float(values.mean()), len(values))


def paired(left: dict[int, np.ndarray], right: dict[int, np.ndarray]
           ) -> tuple[float, float, float] | None:
    """left − right paired by replicate (each side on the first images both share)."""
    common = sorted(set(left) & set(right))
    if len(common) < 2:
        return None
    diffs = []
    for r in common:
        n = min(len(left[r]), len(right[r]))
        diffs.append(float(left[r][:n].mean()) - float(right[r][:n].mean()))
    return t_interval(diffs, (-1.0, 1.0))


# --- checks against metrics.json -------------------------------------------------------------

def check_cells(metrics: dict, rows: list[dict]) -> tuple[int, list[str]]:
    """(cells checked, disagreements) over every cell the per-image file covers."""
    checked, problems = 0, []
    for c in metrics["cells"]:
        if c["attack"] == "benign" and c["threat_model"] != "paper":
            continue
        found = group(rows, c["experiment"], c["population"], c["threat_model"], c["eps"],
                      c["attack"])
        if not found:
            continue
        ours = cell(found)
        checked += 1
        theirs = (c["mean"], c["low"], c["high"])
        if any(abs(a - b) > TOLERANCE + ROUNDED for a, b in zip(ours, theirs)):
            problems.append(f"cell {c['population']}/{c['attack']}/{c['eps']}/"
                            f"{c['threat_model']}: recomputed {_fmt(ours)}, metrics.json "
                            f"{_fmt(theirs)}")
    return checked, problems


def _populations_of(metrics: dict) -> dict[tuple[str, str], str]:
    """(experiment, regime) → population id (a report of record has one population per
    regime and experiment)."""
    out = {}
    for c in metrics["cells"]:
        out.setdefault((c["experiment"], c["regime"]), c["population"])
    return out


def check_claims(metrics: dict, rows: list[dict]) -> tuple[int, list[str]]:
    """(claim rows checked, disagreements): each row with a cell and a t interval over
    replicates, recomputed from the per-image file."""
    populations = _populations_of(metrics)
    checked, problems = 0, []
    for claim in metrics["claims"]:
        evidence = list(claim["evidence"])
        if claim.get("strongest"):
            evidence += claim["strongest"]["evidence"]
        for e in evidence:
            where = e.get("cell")
            if not where or e.get("method") != "t over replicates":
                continue
            experiments = {exp for (exp, regime) in populations
                           if regime in (where["left"], where["right"])}
            for experiment in sorted(experiments):
                left = populations.get((experiment, where["left"]))
                right = populations.get((experiment, where["right"]))
                if left is None or right is None:
                    continue
                ours = paired(group(rows, experiment, left, where["threat_model"],
                                    where["eps"], where["attack"]),
                              group(rows, experiment, right, where["threat_model"],
                                    where["eps"], where["attack"]))
                if ours is None:
                    continue
                checked += 1
                theirs = (e["mean"], e["low"], e["high"])
                if any(abs(a - b) > TOLERANCE + ROUNDED for a, b in zip(ours, theirs)):
                    problems.append(f"claim {claim['id']} {e['label']}: recomputed "
                                    f"{_fmt(ours)}, metrics.json {_fmt(theirs)}")
    return checked, problems


def _fmt(triple) -> str:
    return "({:.6f}, {:.6f}, {:.6f})".format(*triple)


# --- the README's tables ---------------------------------------------------------------------

def pct(triple) -> str:
    mean, low, high = triple
    return f"{100 * mean:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def pts(triple) -> str:
    mean, low, high = triple
    return f"{100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]"


def one_model_lines(metrics: dict, rows: list[dict]) -> list[str]:
    """| population | ε | threat model | attack | population % | one model % | difference |"""
    out = []
    for population, one in (("ulm", "one-model"), ("ulm-adv", "one-model-adv")):
        for experiment in sorted({r["experiment"] for r in rows if r["population"] == one}):
            for threat, attacks in (("paper", ("fgsm", "pgd", "autoattack", "mifgsm",
                                               "eot-pgd")),
                                    ("adaptive", (STRONGEST,))):
                for attack in attacks:
                    a = group(rows, experiment, population, threat, 0.3, attack)
                    b = group(rows, experiment, one, threat, 0.3, attack)
                    if not a or not b:
                        continue
                    out.append(f"| {LABELS[population]} vs {LABELS[one]} | {threat} | "
                               f"{ATTACK_LABELS[attack]} | {pct(cell(a))} | {pct(cell(b))} | "
                               f"{pts(paired(a, b))} |")
    return out


def strongest_lines(metrics: dict, rows: list[dict]) -> list[str]:
    """| population | threat model | ε | strongest % | N | upper bound |, with what it took."""
    out = []
    flagged = {(r["experiment"], r["population"], r["threat_model"], round(r["eps"], 6)):
               r.get("flagged_by") or [] for r in metrics["records"]
               if r["attack"] == STRONGEST}
    keys = sorted({(r["experiment"], r["population"], r["threat_model"], r["eps"])
                   for r in rows if r["attack"] == STRONGEST},
                  key=lambda k: (k[0], _order(k[1]), k[2], k[3]))
    for experiment, population, threat, eps in keys:
        found = group(rows, experiment, population, threat, eps, STRONGEST)
        n = min(len(v) for v in found.values())
        by = flagged.get((experiment, population, threat, round(eps, 6)), [])
        bound = "upper bound: " + ", ".join(by) if by else "—"
        out.append(f"| {LABELS.get(population, population)} | {threat} | {eps:g} | "
                   f"{pct(cell(found))} | {n} | {bound} |")
    return out


def _order(population: str) -> int:
    order = list(LABELS)
    return order.index(population) if population in order else len(order)


def readme_lines(metrics: dict, rows: list[dict]) -> list[str]:
    return one_model_lines(metrics, rows) + strongest_lines(metrics, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--lines", action="store_true", help="print the README's table lines")
    args = parser.parse_args(argv)
    metrics = json.loads((args.folder / "metrics.json").read_text())
    rows = read_rows(args.folder)
    if args.lines:
        print("\n".join(readme_lines(metrics, rows)))
        return 0
    cells, cell_problems = check_cells(metrics, rows)
    claims, claim_problems = check_claims(metrics, rows)
    for line in cell_problems + claim_problems:
        print(line)
    print(f"{args.folder}: {cells} cells and {claims} claim rows recomputed from "
          f"per_image.csv.gz; {len(cell_problems) + len(claim_problems)} disagree")
    return 1 if cell_problems or claim_problems else 0


if __name__ == "__main__":
    sys.exit(main())
