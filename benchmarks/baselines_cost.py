"""Training cost per epoch of each diversity baseline as a ratio to ULM's, same run (issue 19).

    .venv/bin/python -m benchmarks.baselines_cost --size 4 --n-train 1000 --repeats 3

One epoch of a freshly initialised LeNet5 population on mnist-5k (Adam 1e-3, batch 100)
under each regime, with the knobs the spec resolves by default on MNIST
(clmrepro.plan.defaults): ULM (each member its own pass: n passes per epoch), CLM (Alg. 1,
PRSE every 10 minibatches), and ADP, GAL, TRS and DVERGE (one joint pass in which every
member takes every minibatch, core.training.joint).  Regimes are interleaved, each repeat
starting with the next one, and each timed ``repeats`` times; ratios use the median wall time
and the median CPU time of this process (other jobs share the machine: CPU time is what they
disturb least).  Prints
JSON; ``--append FILE`` adds a Markdown table to FILE.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from clmrepro.core.data import load_dataset
from clmrepro.core.training.config import DiversityConfig, LinkingConfig, TrainConfig
from clmrepro.core.training.loop import init_population, train_population
from clmrepro.kinds import regimes
from clmrepro.plan import defaults
from clmrepro.spec.models import Experiment

REGIMES = ("ulm", "clm", "adp", "gal", "trs", "dverge")


def diversity_configs(size: int) -> dict[str, DiversityConfig]:
    """Each baseline's knobs as the plan resolves them for an MNIST LeNet5 experiment."""
    configs = {}
    for kind in REGIMES[2:]:
        experiment = Experiment.model_validate({
            "id": "mnist", "dataset": {"name": "mnist-5k"}, "architecture": "lenet5",
            "populations": [{"id": kind, "size": size, "regime": {"kind": kind}}],
            "evaluation": {"attacks": [{"kind": "fgsm", "eps": [0.3]}]}})
        block = defaults.diversity_block(experiment.populations[0], experiment)
        configs[kind] = regimes.get(kind).train_configs({"diversity": block})["diversity"]
    return configs


def measure(args) -> dict:
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist-5k", n_train=args.n_train, n_test=200)
    cfg = TrainConfig(epochs=1, batch_size=100, optimizer="adam", lr=1e-3)
    configs = diversity_configs(args.size)
    link = LinkingConfig(alpha=0.1, delta=0.1, prse_every=10)
    times: dict[str, list[float]] = {r: [] for r in REGIMES}
    cpu: dict[str, list[float]] = {r: [] for r in REGIMES}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        # each repeat starts with another regime: no regime always runs first or after another
        shift = repeat % len(REGIMES)
        for regime in REGIMES[shift:] + REGIMES[:shift]:
            models = init_population("lenet5", args.size, in_channels=1, num_classes=10, seed=0)
            t0, c0 = time.perf_counter(), time.process_time()
            record = train_population(models, data, training=cfg,
                                      linking=link if regime == "clm" else None, adversarial=None,
                                      seed=0, device=torch.device("cpu"), progress=False,
                                      diversity=configs.get(regime))
            times[regime].append(time.perf_counter() - t0)
            cpu[regime].append(time.process_time() - c0)
            accuracy[regime] = statistics.fmean(record["test_accuracy"])
    median = {r: statistics.median(v) for r, v in times.items()}
    cpu_median = {r: statistics.median(v) for r, v in cpu.items()}
    return {
        "date": dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads,
        "size": args.size, "n_train": args.n_train, "repeats": args.repeats,
        "seconds_median": {r: round(t, 2) for r, t in median.items()},
        "seconds_all": {r: [round(t, 2) for t in v] for r, v in times.items()},
        "ratio_to_ulm": {r: round(median[r] / median["ulm"], 2) for r in REGIMES},
        # CPU seconds of this process: what other jobs on the machine disturb least
        "cpu_seconds_median": {r: round(t, 2) for r, t in cpu_median.items()},
        "cpu_ratio_to_ulm": {r: round(cpu_median[r] / cpu_median["ulm"], 2) for r in REGIMES},
        "test_accuracy_after_one_epoch": {r: round(a, 4) for r, a in accuracy.items()},
        "knobs": {r: c.params for r, c in configs.items()},
    }


def markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {r} | {result['seconds_median'][r]:.2f} | {result['ratio_to_ulm'][r]:.2f} | "
        f"{result['cpu_seconds_median'][r]:.2f} | {result['cpu_ratio_to_ulm'][r]:.2f} | "
        f"{100 * result['test_accuracy_after_one_epoch'][r]:.1f} |" for r in REGIMES)
    return (f"\n### Diversity baselines: training cost per epoch vs ULM — {result['date']} "
            f"({result['cpu_capability']})\n\n"
            f"`python -m benchmarks.baselines_cost --size {result['size']} --n-train "
            f"{result['n_train']} --repeats {result['repeats']}`: one epoch, LeNet5 × "
            f"{result['size']}, {result['n_train']} mnist-5k images, {result['threads']} "
            f"thread(s), median of {result['repeats']} interleaved runs.\n\n"
            "| regime | wall s / epoch | wall ratio to ULM | CPU s / epoch | CPU ratio to ULM | "
            "mean test accuracy after 1 epoch (%) |\n"
            "|---|---|---|---|---|---|\n" + rows + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--append", type=Path)
    args = parser.parse_args(argv)
    result = measure(args)
    print(json.dumps(result, indent=2))
    if args.append:
        with args.append.open("a") as handle:
            handle.write(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
