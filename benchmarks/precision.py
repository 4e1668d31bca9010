"""bf16 autocast vs fp32 for ResNet18 (issue 10's mixed-precision knob): training speed, PGD
crafting speed, and the effect of training in bf16 on benign accuracy and PGD MRA.

Both variants train the same ResNet18 (same seed, same data order) on mnist-5k for the given
epochs with ``execution.precision`` fp32 or bf16 (bf16 = autocast + channels_last); each trained
model is then scored in fp32 on the same test images, benign and under the same PGD attack crafted
in fp32, so the accuracy columns show what training in bf16 changed.  Crafting time is measured
for both precisions on the fp32-trained model.  Same process, interleaved, one thread:

    python -m benchmarks.precision --n-train 1000 --n-test 200 --epochs 1 --device cpu
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from clmrepro.core.attacks.executors import craft_paper
from clmrepro.core.data import load_dataset, to_unit
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.training.config import ExecutionConfig, TrainConfig
from clmrepro.core.training.loop import init_population, train_population
from clmrepro.core.training.step import accuracy
from clmrepro.kinds.attacks import get

PGD = {"steps": 10, "alpha": 0.03, "random_start": True}


def train(data, precision: str, epochs: int, device) -> tuple[torch.nn.Module, float]:
    (model,) = init_population("resnet18", 1, in_channels=1, num_classes=10, seed=0)
    start = time.perf_counter()
    train_population([model], data, training=TrainConfig(epochs=epochs, batch_size=100,
                                                         optimizer="adam", lr=1e-3),
                     linking=None, adversarial=None, seed=0, device=device, progress=False,
                     execution=ExecutionConfig(population="sequential", precision=precision))
    return model, time.perf_counter() - start


def craft(model, data, precision: str, eps: float, device) -> tuple[torch.Tensor, float]:
    runtime = AttackRuntime(torch.device(device), precision=precision)
    crafters = torch.zeros(len(data.x_test), dtype=torch.long)
    start = time.perf_counter()
    adv = craft_paper(runtime.prepare([model]), to_unit(data.x_test), data.y_test, kind=get("pgd"), eps=eps, params=PGD,
                      crafters=crafters, batch_size=100, seed=1, device=device, runtime=runtime)
    return adv, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--eps", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data = load_dataset("mnist-5k", n_train=args.n_train, n_test=args.n_test)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device.type} ({name}), torch {torch.__version__}, threads {args.threads}; "
          f"ResNet18, {args.n_train} train / {args.n_test} test mnist-5k images, "
          f"{args.epochs} epoch(s), PGD-{PGD['steps']} eps {args.eps}")
    rows, models = {}, {}
    for precision in ("fp32", "bf16"):
        models[precision], seconds = train(data, precision, args.epochs, device)
        rows[precision] = {"train_s": seconds}
    for precision in ("fp32", "bf16"):
        _, rows[precision]["craft_s"] = craft(models["fp32"], data, precision, args.eps, device)
    for precision, model in models.items():
        adv, _ = craft(model, data, "fp32", args.eps, device)
        kw = {"batch_size": 500, "device": device}
        rows[precision]["benign"] = accuracy(model, to_unit(data.x_test), data.y_test, **kw)
        rows[precision]["pgd"] = accuracy(model, adv, data.y_test, **kw)
    base = rows["fp32"]
    print("| precision | training s | vs fp32 | PGD crafting s | vs fp32 | benign acc "
          "(trained in it) | PGD acc (trained in it) |")
    print("|---|---|---|---|---|---|---|")
    for precision, row in rows.items():
        print(f"| {precision} | {row['train_s']:.1f} | {base['train_s'] / row['train_s']:.2f}× | "
              f"{row['craft_s']:.1f} | {base['craft_s'] / row['craft_s']:.2f}× | "
              f"{100 * row['benign']:.1f}% | {100 * row['pgd']:.1f}% |")


if __name__ == "__main__":
    main()
