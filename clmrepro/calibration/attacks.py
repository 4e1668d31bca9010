"""What the attacks cost per image on a trained model, and how many points AutoAttack's later
components see.

AutoAttack (standard) runs APGD-CE on the initially correct points, then APGD-T (9 targets),
FAB-T (9 targets) and Square each on the points that are still correct (torchattacks
``MultiAttack``).  So its cost is not a constant per image: on a standard MNIST LeNet5 at
eps 0.3 APGD-CE fools nearly every point and the rest is almost free; on an adversarially
trained one most points survive and APGD-T + FAB-T cost ~18x APGD-CE.  ``autoattack_costs``
runs the components one after the other as MultiAttack does, on a quickly trained standard
model and a quickly adversarially trained one, and records the time per image-step of each
component and the fraction of points that reach it.  The plan then prices a population by
its regime (adversarially trained or not).  The quick models stand in for trained ones, so
the survival they show is an approximation (``quick_models`` says how close).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from clmrepro.calibration.units import IN_CHANNELS, now, seconds_per_call, synchronize
from clmrepro.core.attacks.adaptive import RandomDispatch
from clmrepro.core.attacks.sequential import build_attack, seed_attack
from clmrepro.core.models import build_model
from clmrepro.kinds import attacks as attack_kinds

EPS = {"lenet5": 0.3, "resnet18": 8 / 255}
ALPHA = {"lenet5": 0.01, "resnet18": 2 / 255}
# AutoAttack's own settings (and the specs' defaults): APGD-T's cost per step falls and its
# survivors thin out as the step count grows (at 10 steps a mnist5k-like ULM-Adv LeNet5 kept
# 26% of the points after APGD-T and cost 1.6e-3 s per point-step, at 100 steps 19% and
# 1.2e-3), so measuring at 10 steps overestimated AutoAttack on robust models by ~1.7x.
AA_STEPS, AA_QUERIES = 100, 5000
QUICK_AA = (10, 100)


def quick_models(data, device: torch.device, *, seed: int = 0) -> dict[str, torch.nn.Module]:
    """A LeNet5 trained 1 epoch (standard) and one trained 6 epochs on PGD-3 examples (step
    0.15, eps 0.3; adversarial), about 20 CPU-seconds together.

    The adversarial recipe was chosen to resemble a LeNet5 trained as specs/mnist5k.yaml
    trains ULM-Adv (PGD-100 of step 0.01, 5 epochs; 25 CPU-minutes): on the first 100 test
    images that model keeps 35% of the points after APGD-CE and 26% after APGD-T (10 steps;
    33% / 19% at 100 steps), this one 27% / 26%.  Weaker recipes (2 epochs of PGD-5) kept only
    15% / 6% and would halve AutoAttack's cost on adversarially trained populations."""
    import torchattacks

    from clmrepro.core.data import to_unit

    x, y = to_unit(data.x_train).to(device), data.y_train.to(device)
    gen = torch.Generator().manual_seed(seed)

    def trained(epochs: int, adversarial: bool) -> torch.nn.Module:
        torch.manual_seed(seed)
        model = build_model("lenet5", in_channels=1).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        pgd = (torchattacks.PGD(model, eps=0.3, alpha=0.15, steps=3, random_start=True)
               if adversarial else None)
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=gen).to(device)
            for start in range(0, len(y), 100):
                idx = order[start:start + 100]
                xb, yb = x[idx], y[idx]
                if pgd is not None:
                    xb = pgd(xb, yb)
                model.train()
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
        return model.eval()

    return {"standard": trained(1, False), "adversarial": trained(6, True)}


def step_costs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, architecture: str,
               device: torch.device) -> dict[str, float]:
    """Seconds per image per gradient step of each torchattacks kind that names a short run
    (``calibration_params``; eot-pgd: per step and EOT draw) on ``model``."""
    eps, alpha = EPS[architecture], ALPHA[architecture]
    costs = {}
    for kind in attack_kinds.MODULES:
        run_params = kind.calibration_params(eps, alpha)
        if run_params is None:
            continue
        params, grads = run_params
        attack = build_attack(kind, model, eps, params)

        def run(attack=attack):
            seed_attack(attack, 0)
            attack(x, y)

        reps = 1 if device.type == "cpu" and architecture == "resnet18" else 3
        costs[kind.KIND] = seconds_per_call(run, device, reps) / (len(x) * grads)
    return costs


def dispatch_cost(architecture: str, n: int, x: torch.Tensor, y: torch.Tensor,
                  device: torch.device, repeats: int = 3) -> float:
    """Seconds per image of one input gradient through RandomDispatch of n submodels (the
    adaptive EOT-PGD and AutoAttack ``rand``)."""
    models = [build_model(architecture, in_channels=IN_CHANNELS[architecture]).to(device).eval()
              for _ in range(n)]
    dispatch = RandomDispatch(models, torch.Generator().manual_seed(0))

    def gradient():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(F.cross_entropy(dispatch(xg), y), xg)

    return seconds_per_call(gradient, device, repeats) / len(x)


def _still_correct(model, x, y) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1) == y


def autoattack_run(model, x, y, eps: float, device: torch.device, steps: int = AA_STEPS,
                   n_queries: int = AA_QUERIES) -> dict:
    """Times and point counts of each standard AutoAttack component, run as MultiAttack
    runs them (each on the points the previous ones left correct)."""
    params = {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": steps,
              "n_queries": n_queries, "n_restarts": 1, "eot_iter": 1}
    components = build_attack(attack_kinds.get("autoattack"), model, eps, params).attacks
    names = ("apgd_ce", "apgd_t", "fab_t", "square")
    counts = {"images": len(x), "clean": int(_still_correct(model, x, y).sum())}
    times = {}
    left = torch.arange(len(x), device=x.device)
    reached = {}
    for name, attack in zip(names, components):
        reached[name] = len(left)
        if len(left) == 0:
            times[name] = 0.0
            counts[name] = 0
            continue
        synchronize(device)
        start = now()
        adv = attack(x[left], y[left])
        synchronize(device)
        times[name] = now() - start
        left = left[_still_correct(model, adv, y[left])]
        counts[name] = len(left)
    return {"times": times, "counts": counts, "reached": reached}


def autoattack_costs(models: dict, x, y, architecture: str, device: torch.device,
                     steps: int = AA_STEPS, n_queries: int = AA_QUERIES) -> dict:
    """Unit costs and survival fractions (files.py) from runs on the standard and the
    adversarial model; unit costs come from the run with the most points in each component."""
    eps = EPS[architecture]
    runs = {regime: autoattack_run(model, x, y, eps, device, steps, n_queries)
            for regime, model in models.items()}
    work = {"apgd_ce": steps, "apgd_t": steps, "fab_t": steps, "square": n_queries}
    units = {}
    for name, per_point in work.items():
        # APGD-CE attacks only the initially correct points of those it is given
        points = {regime: (run["counts"]["clean"] if name == "apgd_ce" else run["reached"][name])
                  for regime, run in runs.items()}
        best = max(points, key=points.get)
        if points[best] > 0:
            units[name] = runs[best]["times"][name] / (points[best] * per_point)
    survival = {regime: {key: round(run["counts"][key] / run["counts"]["images"], 4)
                         for key in ("clean", "apgd_ce", "apgd_t", "fab_t")}
                for regime, run in runs.items()}
    return {"units": units, "survival": survival,
            "measured_with": {"eps": eps, "steps": steps, "n_queries": n_queries,
                              "images": max(r["counts"]["images"] for r in runs.values()),
                              "model": "lenet5 on mnist-5k: 1 epoch standard; 6 epochs PGD-3 (0.15)"}}
