"""Per-image unit costs of one architecture: a training step, a forward pass, an input
gradient, each for one model and for the population-batched call (core.stacked).

Every cost is the median of a few timed calls after a warm-up call, divided by the images
(and submodels) the call processed.  On CUDA the clock reads after ``synchronize``.  ResNet18
on a CPU takes seconds per batch, so it is timed on a small batch, once; the batch sizes
used are recorded beside the costs.

The clock is wall time, or with ``use_cpu_clock(True)`` this process's CPU time: on a CPU
shared with other jobs (the development machine ran at a load of 7 on 2 cores) a
single-threaded measurement's CPU time is what the work costs on a quiet machine, while its
wall time says how busy the machine was.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

# The steps' allocator setting (core.devices.prepare_torch): measured with it so the numbers
# match what a job sees.
from clmrepro.core.devices import raise_mmap_threshold  # noqa: F401
from clmrepro.core.models import build_model
from clmrepro.core.stacked import StackedPopulation

IN_CHANNELS = {"lenet5": 1, "resnet18": 3}
# the specs' batch sizes (clmrepro.plan.defaults): training 100 MNIST / 200 CIFAR-10,
# attacks and scoring 100, the per-epoch test pass 1000
BATCH_SIZES = {"lenet5": {"train": 100, "attack": 100, "eval": 1000},
               "resnet18": {"train": 200, "attack": 100, "eval": 1000}}
CPU_RESNET_BATCH = 16  # one ResNet18 training step on 200 images takes ~4 s on one core
BATCHED_SIZE = {"lenet5": 10, "resnet18": 4}  # the paper's population sizes (ULM, -Adv)


_CLOCK = {"now": time.perf_counter}


def use_cpu_clock(cpu: bool) -> None:
    _CLOCK["now"] = time.process_time if cpu else time.perf_counter


def now() -> float:
    return _CLOCK["now"]()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, repeats: int = 3,
                     warmup: int = 1) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    clock = time.perf_counter if device.type == "cuda" else _CLOCK["now"]
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        synchronize(device)
        times.append(clock() - start)
    return statistics.median(times)


def autocast(device: torch.device, precision: str):
    """bf16 autocast around forward and loss (the training package's mixed precision)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batch_sizes(architecture: str, device: torch.device) -> dict[str, int]:
    sizes = dict(BATCH_SIZES[architecture])
    if architecture == "resnet18" and device.type == "cpu":
        sizes = {key: CPU_RESNET_BATCH for key in sizes}
    return sizes


def _model(architecture: str, device: torch.device, memory_format: str, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(architecture, in_channels=IN_CHANNELS[architecture])
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    return model.to(device=device, memory_format=fmt)


def _inputs(architecture: str, batch: int, device: torch.device, memory_format: str,
            leading: tuple[int, ...] = ()):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand((*leading, batch, IN_CHANNELS[architecture], 32, 32), generator=gen)
    y = torch.randint(10, (*leading, batch), generator=gen)
    x = x.to(device)
    if memory_format == "channels_last" and not leading:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device)


def model_units(architecture: str, device: torch.device, precision: str = "fp32",
                memory_format: str = "contiguous", repeats: int = 3) -> dict:
    """train / forward / grad seconds per image for one model (docstring of files.py)."""
    sizes = batch_sizes(architecture, device)
    slow = architecture == "resnet18" and device.type == "cpu"
    reps = 1 if slow else repeats
    model = _model(architecture, device, memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = _inputs(architecture, sizes["train"], device, memory_format)

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    model.train()
    train = seconds_per_call(train_step, device, reps) / sizes["train"]
    model.eval()
    forward = {}
    for key in ("attack", "eval"):
        xf, _ = _inputs(architecture, sizes[key], device, memory_format)

        @torch.no_grad()
        def forward_pass(xf=xf):
            with autocast(device, precision):
                model(xf)

        forward[str(sizes[key])] = seconds_per_call(forward_pass, device, reps) / sizes[key]
    xa, ya = _inputs(architecture, sizes["attack"], device, memory_format)

    def input_gradient():
        xg = xa.clone().requires_grad_(True)
        with autocast(device, precision):
            loss = F.cross_entropy(model(xg), ya)
        torch.autograd.grad(loss, xg)

    grad = seconds_per_call(input_gradient, device, reps) / sizes["attack"]
    return {"batch_sizes": sizes, "train": train, "forward": forward, "grad": grad}


def batched_units(architecture: str, device: torch.device, precision: str = "fp32",
                  memory_format: str = "contiguous", n: int | None = None,
                  repeats: int = 3) -> dict:
    """The same costs through one StackedPopulation of n submodels, per image and submodel:
    ``train`` (.each, Adam on the stacked leaves), ``grad_each`` (transfer crafting),
    ``grad_all`` (the adaptive expected loss), ``forward_all`` (scoring)."""
    n = n or BATCHED_SIZE[architecture]
    sizes = batch_sizes(architecture, device)
    models = [_model(architecture, device, memory_format, seed=k) for k in range(n)]
    for model in models:
        model.train()
    stacked = StackedPopulation(models, requires_grad=True)
    opt = torch.optim.Adam(stacked.parameters(), lr=1e-3)
    xs, ys = _inputs(architecture, sizes["train"], device, "contiguous", leading=(n,))

    def train_step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            out = stacked.each(xs)
            # the sum of the n submodels' mean losses: each gets its own mean-loss gradient
            loss = F.cross_entropy(out.flatten(0, 1), ys.flatten(), reduction="sum") / sizes["train"]
        loss.backward()
        opt.step()

    train = seconds_per_call(train_step, device, repeats) / (n * sizes["train"])
    stacked.eval()
    b = sizes["attack"]
    xe, ye = _inputs(architecture, b, device, "contiguous", leading=(n,))
    xa, ya = _inputs(architecture, b, device, "contiguous")

    def grad_each():
        xg = xe.clone().requires_grad_(True)
        with autocast(device, precision):
            loss = F.cross_entropy(stacked.each(xg).flatten(0, 1), ye.flatten())
        torch.autograd.grad(loss, xg)

    def grad_all():
        xg = xa.clone().requires_grad_(True)
        with autocast(device, precision):
            out = stacked.all(xg)
            loss = F.cross_entropy(out.flatten(0, 1), ya.repeat(n))
        torch.autograd.grad(loss, xg)

    @torch.no_grad()
    def forward_all():
        with autocast(device, precision):
            stacked.all(xa)

    per = n * b
    return {"n": n, "train": train,
            "grad_each": seconds_per_call(grad_each, device, repeats) / per,
            "grad_all": seconds_per_call(grad_all, device, repeats) / per,
            "forward_all": seconds_per_call(forward_all, device, repeats) / per}


def thread_speedup(architecture: str, threads: list[int]) -> dict[str, float]:
    """CPU only: (wall time of a training step at 1 thread) / (at t threads), per t.  Always
    wall time (CPU time would show no speed-up), so it needs a quiet machine."""
    device = torch.device("cpu")
    before = torch.get_num_threads()
    sizes = batch_sizes(architecture, device)
    model = _model(architecture, device, "contiguous")
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x, y = _inputs(architecture, sizes["train"], device, "contiguous")

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    reps = 1 if architecture == "resnet18" else 10
    times = {}
    clock = _CLOCK["now"]
    use_cpu_clock(False)
    try:
        for t in sorted(set([1, *threads])):
            torch.set_num_threads(t)
            times[t] = seconds_per_call(step, device, reps)
    finally:
        torch.set_num_threads(before)
        _CLOCK["now"] = clock
    return {str(t): round(times[1] / times[t], 3) for t in sorted(times)}
