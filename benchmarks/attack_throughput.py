"""Attack throughput: batched vs sequential transfer crafting, and each threat model's cost.

    .venv/bin/python -m benchmarks.attack_throughput [--device auto] [--repeats 3]
        [--transfer-models 10] [--transfer-samples 200] [--steps 40]
        [--table] [--samples 200] [--models 4] [--kinds fgsm,pgd,...]

1. Transfer crafting (issue 10): every one of ``--transfer-models`` LeNet5s crafts PGD
   (``--steps`` steps of 0.01, eps 0.3, random start; the paper's PGD-40) on the same
   ``--transfer-samples`` images, once one submodel at a time with torchattacks
   (``population: sequential``) and once as one batched computation on
   ``StackedPopulation`` (``population: batched``).  The two are interleaved and each timed
   ``--repeats`` times; the ratio uses the medians of the same run (other jobs share the
   machine).  ``speed`` = sequential / batched time, so > 1 means batched is faster.  The
   fraction of pixels where the two sets differ is printed beside it (float rounding of the
   batched convolutions).
2. ``--table``: the older table, each threat model's crafting time per attack kind.

Untrained LeNet5 submodels on random 1x32x32 inputs (the cost of an attack does not depend
on the weights, except AutoAttack, which skips points already misclassified; labels are set
to the first submodel's predictions so it has work to do).  One thread on CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from clmrepro.core.attacks.adaptive import craft_adaptive
from clmrepro.core.attacks.executors import craft_paper, craft_transfer
from clmrepro.core.attacks.sequential import build_attack
from clmrepro.core.attacks.work import assign_crafters
from clmrepro.core.devices import resolve_device
from clmrepro.core.models import build_model
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import derive_seed, generator
from clmrepro.kinds.attacks import get

SMOKE_PARAMS = {  # specs/smoke.yaml, MNIST eps 0.3
    "fgsm": {},
    "pgd": {"alpha": 0.01, "steps": 40, "random_start": True},
    "autoattack": {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 10,
                   "n_queries": 200, "n_restarts": 1, "eot_iter": 5},
    "mifgsm": {"alpha": 0.06, "steps": 5, "decay": 1.0},
    "eot-pgd": {"alpha": 0.02, "steps": 20, "eot_iter": 2, "random_start": True},
}


def population(n: int, device) -> list:
    torch.manual_seed(0)
    return [build_model("lenet5", in_channels=1).to(device).eval() for _ in range(n)]


def inputs(models, n: int):
    x = torch.rand(n, 1, 32, 32, generator=generator(1))
    with torch.no_grad():
        y = models[0](x.to(next(models[0].parameters()).device)).argmax(1).cpu()
    return x, y


def timed(fn, device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def transfer_comparison(args, device) -> None:
    models = population(args.transfer_models, device)
    x, y = inputs(models, args.transfer_samples)
    params = {"alpha": 0.01, "steps": args.steps, "random_start": True}
    kw = dict(kind=get("pgd"), eps=0.3, params=params, batch_size=args.batch_size, seed=0,
              device=device)
    runtimes = {"sequential": AttackRuntime(device), "batched": AttackRuntime(device, batched=True)}
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    sets = {}
    craft_transfer(models, x[:args.batch_size], y[:args.batch_size], runtime=runtimes["batched"],
                   **kw)  # warm-up (lazy initialisation, CUDA kernels)
    for _ in range(args.repeats):
        for name, runtime in runtimes.items():  # interleaved
            seconds, sets[name] = timed(lambda: craft_transfer(models, x, y, runtime=runtime,
                                                               **kw), device)
            times[name].append(seconds)
    seq, bat = statistics.median(times["sequential"]), statistics.median(times["batched"])
    differ = (sets["sequential"] != sets["batched"]).double().mean().item()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"device: {device.type} ({name}); threads {torch.get_num_threads()}; load average {load}")
    print("| crafting | submodels | images | PGD steps | sequential median (s) | "
          "batched median (s) | speed (seq/batched) | differing pixels |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| transfer | {args.transfer_models} | {args.transfer_samples} | {args.steps} | "
          f"{seq:.2f} | {bat:.2f} | {seq / bat:.2f}x | {differ:.1e} |", flush=True)
    print(f"(all times: sequential {[round(t, 2) for t in times['sequential']]}, "
          f"batched {[round(t, 2) for t in times['batched']]})")


def naive_paper(models, x, y, *, kind, eps, params, crafters, batch_size, seed):
    """The authors' loop: one attack object per test batch, built on its crafter."""
    out = torch.empty_like(x)
    for b, start in enumerate(range(0, len(x), batch_size)):
        sl = slice(start, start + batch_size)
        attack = build_attack(kind, models[int(crafters[start])], eps, params)
        torch.manual_seed(derive_seed(seed, b))
        out[sl] = attack(x[sl], y[sl]).detach().cpu()
    return out


def threat_model_table(args, device) -> None:
    models = population(args.models, device)
    x, y = inputs(models, args.samples)
    crafters = assign_crafters(len(x), len(models), mode="per-batch",
                               batch_size=args.batch_size, gen=generator(2))
    runtime = AttackRuntime(device, batched=args.table_batched)
    print(f"\nthreat models, {runtime.path} path:")
    print("| attack | naive per-batch (s) | grouped paper (s) | transfer (s) | adaptive (s) |")
    print("|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        common = dict(kind=get(kind), eps=0.3, params=SMOKE_PARAMS[kind], batch_size=args.batch_size)
        t_naive, _ = timed(lambda: naive_paper(models, x.to(device), y.to(device),
                                               crafters=crafters, seed=0, **common), device)
        t_paper, _ = timed(lambda: craft_paper(models, x, y, crafters=crafters, seed=0,
                                               device=device, runtime=runtime, **common), device)
        t_transfer, _ = timed(lambda: craft_transfer(models, x, y, seed=0, device=device,
                                                     runtime=runtime, **common), device)
        t_adaptive, _ = timed(lambda: craft_adaptive(models, x, y, seed=0, device=device,
                                                     runtime=runtime, **common), device)
        print(f"| {kind} | {t_naive:.2f} | {t_paper:.2f} | {t_transfer:.2f} | {t_adaptive:.2f} |",
              flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--transfer-models", type=int, default=10)
    parser.add_argument("--transfer-samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--table", action="store_true", help="also time every threat model")
    parser.add_argument("--table-batched", action="store_true",
                        help="time the table on the batched path")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--kinds", default=",".join(SMOKE_PARAMS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    transfer_comparison(args, device)
    if args.table:
        threat_model_table(args, device)


if __name__ == "__main__":
    main()
