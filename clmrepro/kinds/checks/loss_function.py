"""Loss function: try another loss (Carlini et al. 2019, "On Evaluating Adversarial
Robustness": an attack whose loss the defence saturates must be tried with another one; issue
26, Build item 3).  In the default ``checks`` (issue 26); the report shows it where a check file
ran it (``Job.reported_where_run``: reports of check files written before, and reports without
a sanity job, read as before).

Job: beside the check's PGD on the cross-entropy (``pgd``), the same PGD (its ε, steps, step
and the same random start, so the two differ only in their loss) on Carlini & Wagner's margin
``max_{j≠y} z_j − z_y`` of the logits, written as ``pgd-margin`` with its per-image table like
every check attack.  Under the paper protocol the margin is the crafting submodel's.  Under the
adaptive threat model it is the **mean over the members of each member's margin**, each capped
at 0 (CW's κ = 0: a member already fooled stops pulling, so the mean works on the members still
right, which is what the expected accuracy scores), not the margin of the population's expected
prediction: that one averages softmax outputs, so it saturates exactly as the cross-entropy does
when the members' logits are large (their softmaxes turn one-hot and its gradient vanishes),
while a member's logit margin is scale-equivariant: scaling its logits scales its gradient and
leaves the sign steps of PGD unchanged.  The mean over members also mirrors the adaptive PGD's
expected cross-entropy.  A LeNet5 member answers log-probabilities; their differences are the
logits' differences, so the margin is the same.

Report: flag when the margin-loss PGD lowers the mean MRA below the cross-entropy PGD's by more
than ``margin_points`` points (the spec's knob, recorded in the check file).
"""

from __future__ import annotations

from pydantic import Field

from clmrepro.kinds.checks.base import (CARLINI, ROUNDING, Costs, Job, Kit, Measure, Population,
                                        Report, no_file, pgd_params, recorded, variants)

NAME = "pgd-margin"
POINTS = 1.0                 # the knob's default: a gain of more than 1 point flags


def rule(threat: str, files) -> str:
    points = recorded(files, NAME, "flag_points", f"{POINTS:g}")
    return (f"Flag when PGD on the Carlini–Wagner margin loss (the same ε, steps, step and "
            f"start) lowers the mean MRA by more than {points} points below PGD on the "
            "cross-entropy (a loss the defence saturates).")


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    margin, pgd = variants(population, threat, NAME)
    d = kit.paired_difference(margin, pgd)
    if d is None:
        return [], no_file(population, threat, f"{NAME} beside pgd")
    points = min(float(s["attacks"][NAME]["params"].get("flag_points", POINTS))
                 for _, s in population.sections(threat) if NAME in s["attacks"])
    ce, cw = kit.cell_interval(pgd), kit.cell_interval(margin)
    return [Measure("PGD, cross-entropy", "accuracy", ce.mean, ce),
            Measure("PGD, margin loss", "accuracy", cw.mean, cw),
            Measure("margin loss − cross-entropy", "difference", d.interval.mean, d.interval,
                    flags=-d.interval.mean > points / 100.0 + ROUNDING, key=True)], ""


def params(knobs) -> dict:
    return {"margin_points": knobs["margin_points"]}


def attacks(s, threat: str) -> dict[str, dict]:
    margin = ("max_{j≠y} z_j − z_y of the crafting submodel" if threat == "paper"
              else "mean over the submodels of min(max_{j≠y} z_j − z_y, 0)")
    return {NAME: {**pgd_params(s), "loss": "margin", "margin": margin,
                   "flag_points": float(s["margin_points"])}}


def margin(outputs, y):
    """Carlini & Wagner's margin per image: the best other class's logit minus the true
    class's (positive: misclassified)."""
    import torch

    true = outputs.gather(1, y.unsqueeze(1)).squeeze(1)
    others = outputs.masked_fill(torch.nn.functional.one_hot(y, outputs.shape[1]).bool(),
                                 float("-inf"))
    return others.max(1).values - true


class _MarginTarget:
    """A ``core.attacks.sanity.Target`` whose loss is the margin: the crafting submodel's
    (one member), or the mean of the members' margins capped at 0 (several)."""

    def __init__(self, target):
        self.target = target

    def loss(self, x, y, kind: str = "margin"):
        import torch

        outs = self.target.outputs(x)
        if len(outs) == 1:
            return margin(outs[0], y)
        return torch.stack([margin(o, y).clamp(max=0) for o in outs]).mean(0)

    def measure(self, x, y):
        return self.target.measure(x, y)


def run(work) -> dict:
    from clmrepro.core.attacks.sanity import traced_pgd
    from clmrepro.core.seeding import derive_seed, generator

    # the seed of the check's own PGD: the same random start, so only the loss differs
    done = traced_pgd(_MarginTarget(work.target), work.x, work.y, work.pgd,
                      generator(derive_seed(work.unit.seed, "pgd")))
    return {NAME: done.adv}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    return c.steps * c.step, 1


REPORT = Report("loss-function", "loss function (margin vs cross-entropy)",
                f"{CARLINI} (try other losses)", None, rule, verdict)
JOB = Job(
    "margin-loss", "margin-loss: PGD on the Carlini–Wagner margin beside cross-entropy",
    reported_where_run=True,
    knobs={"margin_points": (float, Field(POINTS, gt=0, le=100, description="margin-loss: "
                                          "flag when it lowers the MRA by more than this many "
                                          "points"))},
    params=params, attacks=attacks, run=run, price=price)
