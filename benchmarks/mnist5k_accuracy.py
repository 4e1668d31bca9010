"""Benign accuracy of ULM and of CLM retrained from it on mnist-5k (paper's MNIST settings).

    .venv/bin/python -m benchmarks.mnist5k_accuracy --size 10 --ulm-epochs 5 --clm-epochs 5

ULM: Adam lr 1e-3, batch 100.  CLM: retrained from the ULM with Adam lr 1e-4, α = δ = 0.1,
PRSE every 10 minibatches, shared mask (docs/reference.md §1).  Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from clmrepro.core.data import load_dataset
from clmrepro.core.training.config import LinkingConfig, TrainConfig
from clmrepro.core.training.loop import init_population, train_population


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--ulm-epochs", type=int, default=5)
    parser.add_argument("--clm-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    data = load_dataset("mnist-5k")
    models = init_population("lenet5", args.size, in_channels=1, num_classes=10, seed=args.seed)
    t0 = time.perf_counter()
    ulm = train_population(models, data, training=TrainConfig(args.ulm_epochs, 100, "adam", 1e-3),
                           linking=None, adversarial=None, seed=args.seed, device=cpu, progress=False)
    t1 = time.perf_counter()
    clm = train_population(models, data, training=TrainConfig(args.clm_epochs, 100, "adam", 1e-4),
                           linking=LinkingConfig(alpha=0.1, delta=0.1, prse_every=10),
                           adversarial=None, seed=args.seed + 1, device=cpu, progress=False)
    t2 = time.perf_counter()
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    print(json.dumps({
        "size": args.size, "ulm_epochs": args.ulm_epochs, "clm_epochs": args.clm_epochs,
        "ulm_test_accuracy": ulm["test_accuracy"], "clm_test_accuracy": clm["test_accuracy"],
        "ulm_mean": mean(ulm["test_accuracy"]), "clm_mean": mean(clm["test_accuracy"]),
        "prse_events": sum(map(sum, clm["prse"]["examinations"])),
        "ulm_seconds": round(t1 - t0, 1), "clm_seconds": round(t2 - t1, 1),
        "machine": platform.machine(), "threads": args.threads,
    }))


if __name__ == "__main__":
    main()
