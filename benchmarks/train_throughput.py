"""Training throughput: clmrepro's CLM/ULM loop against a bare PyTorch loop, and ULM trained
one submodel at a time against the whole population batched (core.stacked), same run.

    .venv/bin/python -m benchmarks.train_throughput --size 10 --epochs 1 --repeats 3 \
        --append BENCHMARKS.md
    .venv/bin/python -m benchmarks.train_throughput --device cuda ...   # on a GPU

All variants train the same freshly initialised LeNet5 population on mnist-5k with
Adam (lr 1e-3), batch 100 and the same data order (the permutations of our order
generators).  The bare loop is pure training on preconverted float tensors; clmrepro's loop
also records per-epoch training loss/accuracy and test accuracy (the training record), so
that work counts against it.  The ULM variants differ only in the job's ``execution`` block:
``ulm`` (sequential, contiguous: the default on CPU), ``ulm-cl`` (sequential, channels_last),
``ulm-batched`` and ``ulm-batched-cl`` (population batched).  ``--pgd-steps N`` makes the
four ULM variants ULM-Adv (PGD with N steps, eps 0.3, step 0.01, random start).
Variants are interleaved and each is timed ``repeats`` times; ratios use the median time
(the best times are reported too) because other jobs share the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from clmrepro.core.data import load_dataset, to_unit
from clmrepro.core.seeding import derive_seed, generator
from clmrepro.core.training.config import (
    AdversarialConfig,
    ExecutionConfig,
    LinkingConfig,
    TrainConfig,
)
from clmrepro.core.training.loop import init_population, train_population

ULM_VARIANTS = {  # name -> execution block
    "ulm": ExecutionConfig(population="sequential"),
    "ulm-cl": ExecutionConfig(population="sequential", memory_format="channels_last"),
    "ulm-batched": ExecutionConfig(population="batched"),
    "ulm-batched-cl": ExecutionConfig(population="batched", memory_format="channels_last"),
}


def bare_loop(models, x, y, *, epochs: int, batch_size: int, seed: int) -> None:
    models = [m.to(x.device) for m in models]
    orders = [generator(derive_seed(seed, "order", i)) for i in range(len(models))]
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    for _ in range(epochs):
        for model, opt, gen in zip(models, opts, orders):
            model.train()
            perm = torch.randperm(len(y), generator=gen).to(x.device)
            for start in range(0, len(y), batch_size):
                idx = perm[start : start + batch_size]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()


def timed(fn, device: torch.device) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fn()``.  On CUDA kernels run asynchronously: the clock starts
    after the GPU has finished what came before and stops after it has finished ``fn``'s work
    (torch.cuda.synchronize), not when the host has merely queued it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, time.process_time() - c0


def measure(args) -> dict:
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist-5k", n_train=args.n_train)
    device = torch.device(args.device)
    x_float, y = to_unit(data.x_train).to(device), data.y_train.to(device)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", lr=1e-3)
    link = LinkingConfig(alpha=0.1, delta=0.1, prse_every=10)
    adv = AdversarialConfig(eps=0.3, alpha=0.01, steps=args.pgd_steps) if args.pgd_steps else None

    def fresh():
        return init_population("lenet5", args.size, in_channels=1, num_classes=10, seed=args.seed)

    def ours(linking, adversarial=None, execution=None):
        return lambda m: train_population(m, data, training=cfg, linking=linking, adversarial=adversarial,
                                          seed=args.seed, device=device, progress=False,
                                          execution=execution or ULM_VARIANTS["ulm"])

    runs = {
        "bare": lambda m: bare_loop(m, x_float, y, epochs=args.epochs,
                                    batch_size=args.batch_size, seed=args.seed),
        "clm": ours(link),
        **{name: ours(None, adv, execution) for name, execution in ULM_VARIANTS.items()},
    }
    times = {name: [] for name in runs}
    cpu_times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            models = fresh()
            wall, cpu = timed(lambda: fn(models), device)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    images = args.size * args.epochs * len(data.y_train)
    # the median resists a repeat that happened to fall in a quiet (or busy) moment
    median = {name: statistics.median(v) for name, v in times.items()}
    cpu_median = {name: statistics.median(v) for name, v in cpu_times.items()}
    rate = {name: images / t for name, t in median.items()}

    def speedup(fast: str, slow: str, table=median) -> float:
        return round(table[slow] / table[fast], 3)

    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "ulm_pgd_steps": args.pgd_steps,
        # same-run ratios, > 1 = the first named variant is faster
        "batched_vs_sequential": speedup("ulm-batched", "ulm"),
        "batched_cl_vs_sequential": speedup("ulm-batched-cl", "ulm"),
        "batched_cl_vs_sequential_cl": speedup("ulm-batched-cl", "ulm-cl"),
        "sequential_cl_vs_sequential": speedup("ulm-cl", "ulm"),
        "cpu_batched_vs_sequential": speedup("ulm-batched", "ulm", cpu_median),
        "cpu_batched_cl_vs_sequential": speedup("ulm-batched-cl", "ulm", cpu_median),
        "cpu_batched_cl_vs_sequential_cl": speedup("ulm-batched-cl", "ulm-cl", cpu_median),
        "images_per_s": {k: round(v, 1) for k, v in rate.items()},
        "seconds_all": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "clm_vs_bare": round(rate["clm"] / rate["bare"], 3),
        "ulm_vs_bare": round(rate["ulm"] / rate["bare"], 3),
        "prse_overhead": round(median["clm"] / median["ulm"] - 1.0, 4),
        "best_clm_vs_bare": round(min(times["bare"]) / min(times["clm"]), 3),
        "best_prse_overhead": round(min(times["clm"]) / min(times["ulm"]) - 1.0, 4),
        # CPU time of this process: with one thread it is what the work costs, whatever
        # else runs on the machine
        "cpu_seconds_all": {k: [round(t, 2) for t in v] for k, v in cpu_times.items()},
        "cpu_clm_vs_bare": round(statistics.median(cpu_times["bare"]) / statistics.median(cpu_times["clm"]), 3),
        "cpu_ulm_vs_bare": round(statistics.median(cpu_times["bare"]) / statistics.median(cpu_times["ulm"]), 3),
        "cpu_prse_overhead": round(
            statistics.median(cpu_times["clm"]) / statistics.median(cpu_times["ulm"]) - 1.0, 4),
        "images": images,
    }


def markdown(args, result: dict, command: str) -> str:
    r = result["images_per_s"]
    return "\n".join([
        f"### train_throughput — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"- command: `{command}`",
        f"- machine: {platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
        f"{args.threads} thread(s), {torch.get_num_interop_threads()} interop; load average {os.getloadavg()[0]:.2f} at the end",
        f"- workload: {args.size} LeNet5 × {args.epochs} epochs × {result['images'] // (args.size * args.epochs):,} "
        f"mnist-5k images, batch {args.batch_size}, Adam; median of {args.repeats} interleaved repeats; "
        f"device {result['device']}; ULM variants with PGD-{args.pgd_steps} (0 = none)",
        "",
        "| loop | images/s (median) | seconds (all repeats) |",
        "|---|---|---|",
        *[f"| {k} | {r[k]} | {result['seconds_all'][k]} |" for k in r],
        "",
        f"- ULM batched / sequential (same run): **{result['batched_vs_sequential']}×** contiguous, "
        f"**{result['batched_cl_vs_sequential']}×** batched channels_last vs the sequential default, "
        f"{result['batched_cl_vs_sequential_cl']}× both channels_last; sequential channels_last / "
        f"contiguous {result['sequential_cl_vs_sequential']}× (goal: batched ≥ 0.9× on CPU)",
        f"- the same from process CPU time: {result['cpu_batched_vs_sequential']}×, "
        f"{result['cpu_batched_cl_vs_sequential']}×, {result['cpu_batched_cl_vs_sequential_cl']}×",
        "",
        f"- CLM / bare PyTorch: **{result['clm_vs_bare']}×** (goal ≥ 0.9×); "
        f"ULM / bare: {result['ulm_vs_bare']}×",
        f"- PRSE overhead (CLM time / ULM time − 1): **{result['prse_overhead'] * 100:.1f}%** (goal ≤ 5%)",
        f"- from the best repeats instead: CLM / bare {result['best_clm_vs_bare']}×, PRSE overhead "
        f"{result['best_prse_overhead'] * 100:.1f}%",
        f"- from process CPU time (median; insensitive to other jobs): CLM / bare "
        f"**{result['cpu_clm_vs_bare']}×**, ULM / bare {result['cpu_ulm_vs_bare']}×, PRSE overhead "
        f"**{result['cpu_prse_overhead'] * 100:.1f}%**; CPU seconds {result['cpu_seconds_all']}",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="CLM training throughput vs a bare PyTorch loop")
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-train", type=int, default=None, help="mnist-5k training images (default 4,000)")
    parser.add_argument("--pgd-steps", type=int, default=0, help="ULM variants as ULM-Adv with PGD-N")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--append", type=Path, default=None, help="append a section to this file")
    args = parser.parse_args(argv)
    result = measure(args)
    print(json.dumps(result))
    if args.append is not None:
        import sys

        command = " ".join([".venv/bin/python -m benchmarks.train_throughput", *sys.argv[1:]])
        with open(args.append, "a", encoding="utf-8") as handle:
            handle.write(markdown(args, result, command) + "\n")


if __name__ == "__main__":
    main()
