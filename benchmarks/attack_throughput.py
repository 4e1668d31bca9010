"""Attack throughput: grouped crafting vs a naive per-batch loop, and each threat model's cost.

    .venv/bin/python benchmarks/attack_throughput.py [--samples 200] [--models 4]

Untrained LeNet5 submodels on random 1x32x32 inputs (the cost of an attack does not
depend on the weights, except AutoAttack, which skips points already misclassified;
labels are set to the first submodel's predictions so it has work to do).  One thread.
"""

from __future__ import annotations

import argparse
import time

import torch

from clmrepro.core.adaptive import craft_adaptive
from clmrepro.core.attacks import assign_crafters, build_attack, craft_paper, craft_transfer
from clmrepro.core.models import build_model
from clmrepro.core.seeding import derive_seed, generator

SMOKE_PARAMS = {  # specs/smoke.yaml, MNIST eps 0.3
    "fgsm": {},
    "pgd": {"alpha": 0.01, "steps": 20, "random_start": True},
    "autoattack": {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 20,
                   "n_queries": 500, "n_restarts": 1, "eot_iter": 20},
    "mifgsm": {"alpha": 0.06, "steps": 5, "decay": 1.0},
    "eot-pgd": {"alpha": 0.01, "steps": 10, "eot_iter": 2, "random_start": True},
}


def naive_paper(models, x, y, *, kind, eps, params, crafters, batch_size, seed):
    """The authors' loop: one attack object per test batch, built on its crafter."""
    out = torch.empty_like(x)
    for b, start in enumerate(range(0, len(x), batch_size)):
        sl = slice(start, start + batch_size)
        attack = build_attack(kind, models[int(crafters[start])], eps, params)
        torch.manual_seed(derive_seed(seed, b))
        out[sl] = attack(x[sl], y[sl]).detach()
    return out


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--kinds", default=",".join(SMOKE_PARAMS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = [build_model("lenet5", in_channels=1).eval() for _ in range(args.models)]
    x = torch.rand(args.samples, 1, 32, 32, generator=generator(1))
    y = models[0](x).argmax(1).detach()
    crafters = assign_crafters(len(x), len(models), mode="per-batch",
                               batch_size=args.batch_size, gen=generator(2))
    print("| attack | naive per-batch (s) | grouped paper (s) | transfer (s) | adaptive (s) |")
    print("|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        common = dict(kind=kind, eps=0.3, params=SMOKE_PARAMS[kind], batch_size=args.batch_size)
        t_naive = timed(lambda: naive_paper(models, x, y, crafters=crafters, seed=0, **common))
        t_paper = timed(lambda: craft_paper(models, x, y, crafters=crafters, seed=0,
                                            device="cpu", **common))
        t_transfer = timed(lambda: craft_transfer(models, x, y, seed=0, device="cpu", **common))
        t_adaptive = timed(lambda: craft_adaptive(models, x, y, seed=0, device="cpu", **common))
        print(f"| {kind} | {t_naive:.2f} | {t_paper:.2f} | {t_transfer:.2f} | {t_adaptive:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
