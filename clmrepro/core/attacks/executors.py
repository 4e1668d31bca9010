"""Which executor crafts an attack's units, and whole adversarial sets in memory.

The work plan (``core.attacks.work``) knows executors only as a protocol; the choice lives
here, beside the executors: ``batched`` (``core.attacks.batched``, the population as one
computation) where the runtime asks for it and the attack allows it, else ``sequential``
(``core.attacks.sequential``, torchattacks on one submodel at a time, the reference).  The
sequential module is imported on demand, so a batched job never imports torchattacks.

:func:`craft_paper` and :func:`craft_transfer` craft a whole set in memory (benchmarks,
tests); the attack step runs the same units chunk by chunk with a store
(``steps.attack``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from clmrepro.core.attacks.batched import BatchedExecutor
from clmrepro.core.attacks.kinds import AttackKind
from clmrepro.core.attacks.work import (
    Executor,
    assemble,
    chunked,
    craft_chunks,
    paper_units,
    transfer_units,
)
from clmrepro.core.runtime import AttackRuntime


def make_executor(models, x: Tensor, y: Tensor, *, kind: AttackKind, eps: float, params: dict,
                  runtime: AttackRuntime) -> Executor:
    """The executor of ``paper``/``transfer`` units: batched where ``runtime`` asks for it
    and the kind allows it (its module's ``BATCHED``; not AutoAttack), else torchattacks one
    submodel at a time."""
    if runtime.batched and kind.BATCHED:
        return BatchedExecutor(models, x, y, kind=kind, eps=eps, params=params, runtime=runtime)
    from clmrepro.core.attacks.sequential import SequentialExecutor

    return SequentialExecutor(models, x, y, kind=kind, eps=eps, params=params,
                              device=runtime.device)


def _craft(units, models, x, y, out, *, kind, eps, params, runtime, desc, progress,
           by_crafter=False) -> Tensor:
    execute = make_executor(models, x, y, kind=kind, eps=eps, params=params, runtime=runtime)
    chunks = chunked(units, execute.units_per_call)
    with tqdm(total=len(chunks), desc=desc, disable=not progress) as bar:
        results = craft_chunks(desc, chunks, execute, x=x, eps=eps,
                               on_chunk=lambda: bar.update(1))
    return assemble(chunks, results, out, by_crafter=by_crafter)


def craft_paper(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: AttackKind, eps: float,
                params: dict, crafters: Tensor, batch_size: int, seed: int, device,
                runtime: AttackRuntime | None = None, progress: bool = False) -> Tensor:
    """The adversarial set of eq. 6: sample j crafted on submodel ``crafters[j]``
    (in memory; the attack step saves chunks with ``core.attacks.work.craft_chunks``)."""
    if crafters.shape != (len(x),):
        raise ValueError(f"crafters must have shape ({len(x)},), got {tuple(crafters.shape)}")
    runtime = runtime or AttackRuntime(torch.device(device))
    units = paper_units(crafters, len(models), batch_size=batch_size, seed=seed)
    return _craft(units, models, x, y, torch.empty_like(x), kind=kind, eps=eps, params=params,
                  runtime=runtime, desc="paper", progress=progress)


def craft_transfer(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: AttackKind, eps: float,
                   params: dict, batch_size: int, seed: int, device,
                   runtime: AttackRuntime | None = None, progress: bool = False) -> Tensor:
    """Every submodel crafts the whole set: shape (n, N, C, H, W), [i] crafted on i."""
    runtime = runtime or AttackRuntime(torch.device(device))
    units = transfer_units(len(models), len(x), batch_size=batch_size, seed=seed)
    out = torch.empty((len(models), *x.shape), dtype=x.dtype)
    return _craft(units, models, x, y, out, kind=kind, eps=eps, params=params,
                  runtime=runtime, desc="transfer", progress=progress, by_crafter=True)
