"""What is crafted on which submodel with which seed, checked and saved chunk by chunk.

This module plans an attack's work without running it and without importing torchattacks
(importing torch + torchattacks took 16 s on a loaded machine; the evaluate step and the
batched attacks need neither).  It knows executors only as the :class:`Executor` protocol:
the caller picks one (``core.attacks.executors``: ``sequential`` with torchattacks,
``batched`` with the population as one computation; ``core.attacks.adaptive``) and passes
it to :func:`craft_chunks`.

One attack call is a :class:`Unit`: the samples ``index`` crafted on submodel ``crafter``
(``None``: against the whole population) after reseeding with ``seed``.  Every unit draws
its randomness from its own seed, so a unit's result does not depend on which units ran
before it, and a job can be cut into chunks of units that are saved as they finish and
resumed after a crash (issue 12).  The seeds are the ones the sequential code always used:

- ``paper`` (eq. 6): samples grouped by crafting submodel k, cut into batches;
  seed ``derive_seed(derive_seed(seed, "paper", k), start)``, ``start`` the batch's
  offset inside group k.  With ``per-batch`` crafters (the authors' code, docs/reference.md §1)
  a group's batches are exactly the authors' test batches crafted by k.
- ``transfer``: every submodel i crafts every batch; ``derive_seed(derive_seed(seed,
  "transfer", i), start)``.  Units are ordered batch-major, so on the batched path one
  chunk of n units is one batch attacked by all n crafters at once
  (``StackedPopulation.each``).
- ``adaptive``: batch b against the population; ``derive_seed(seed, "adaptive", b)``.

A chunk is what one executor call crafts (``Executor.units_per_call``): n units on the
batched path, one unit (one batch on one submodel) on the sequential path, so a stop
request waits for one such call at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from clmrepro.core.attacks.kinds import CRAFTING_MODES, check_perturbation
from clmrepro.core.interrupt import Interrupted, StopCheck
from clmrepro.core.seeding import derive_seed


def assign_crafters(n_samples: int, n_models: int, *, mode: str, batch_size: int,
                    gen: torch.Generator) -> Tensor:
    """Which submodel crafts each sample: uniform over submodels, drawn once per test
    batch (the authors' code) or once per sample."""
    if mode not in CRAFTING_MODES:
        raise ValueError(f"crafting must be one of {CRAFTING_MODES} (got {mode!r})")
    if n_models < 1 or batch_size < 1:
        raise ValueError(f"need n_models >= 1 and batch_size >= 1 (got {n_models}, {batch_size})")
    if mode == "per-sample":
        return torch.randint(n_models, (n_samples,), generator=gen)
    n_batches = math.ceil(n_samples / batch_size)
    per_batch = torch.randint(n_models, (n_batches,), generator=gen)
    return per_batch.repeat_interleave(batch_size)[:n_samples]


# --- units of work ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Unit:
    """One attack call: samples ``index`` (into the test set) crafted on submodel
    ``crafter`` (None: the whole population) right after reseeding with ``seed``."""

    crafter: int | None
    index: Tensor
    seed: int


def _batches(index: Tensor, batch_size: int):
    for start in range(0, len(index), batch_size):
        yield start, index[start:start + batch_size]


def paper_units(crafters: Tensor, n_models: int, *, batch_size: int, seed: int) -> list[Unit]:
    """Eq. 6: sample j crafted on ``crafters[j]``; crafter-major order."""
    units = []
    for k in range(n_models):
        group = (crafters == k).nonzero().squeeze(1)
        group_seed = derive_seed(seed, "paper", k)
        units += [Unit(k, chunk, derive_seed(group_seed, start))
                  for start, chunk in _batches(group, batch_size)]
    return units


def transfer_units(n_models: int, n_samples: int, *, batch_size: int, seed: int) -> list[Unit]:
    """Every submodel crafts every batch; batch-major order (one batch, all crafters)."""
    crafter_seeds = [derive_seed(seed, "transfer", i) for i in range(n_models)]
    return [Unit(i, chunk, derive_seed(crafter_seeds[i], start))
            for start, chunk in _batches(torch.arange(n_samples), batch_size)
            for i in range(n_models)]


def adaptive_units(n_samples: int, *, batch_size: int, seed: int) -> list[Unit]:
    """Batch b crafted against the whole population."""
    return [Unit(None, chunk, derive_seed(seed, "adaptive", b))
            for b, (_, chunk) in enumerate(_batches(torch.arange(n_samples), batch_size))]


def chunked(units: Sequence[Unit], size: int) -> list[list[Unit]]:
    if size < 1:
        raise ValueError(f"chunk size must be >= 1 (got {size})")
    return [list(units[i:i + size]) for i in range(0, len(units), size)]


# --- running chunks, saving each -----------------------------------------------------------

class Executor(Protocol):
    """Crafts a chunk of units, one adversarial tensor per unit.  ``units_per_call`` is the
    chunk size it works best with (and the granularity of saved state)."""

    units_per_call: int

    def __call__(self, chunk: list[Unit]) -> list[Tensor]: ...


class ChunkStoreLike(Protocol):
    """What :func:`craft_chunks` needs of a store (``core.attacks.state.ChunkStore``)."""

    where: str

    def load(self, name: str) -> list[Tensor] | None: ...

    def save(self, name: str, tensors: list[Tensor]) -> None: ...


def craft_chunks(name: str, chunks: Sequence[list[Unit]], execute: Executor, *,
                 x: Tensor, eps: float, store: ChunkStoreLike | None = None,
                 should_stop: StopCheck | None = None,
                 on_chunk: Callable[[], None] | None = None) -> list[list[Tensor]]:
    """Run ``execute`` on every chunk that ``store`` does not already hold.

    Each result is checked against the eps-ball and [0, 1] of its clean samples, then
    saved (atomically, by the store) before the next chunk starts, so a SIGKILL loses at
    most the chunk in progress.  ``should_stop`` is asked after each saved chunk; when it
    says stop, :class:`~clmrepro.core.interrupt.Interrupted` names the state folder.
    """
    results = []
    for c, chunk in enumerate(chunks):
        key = f"{name}-{c:05d}"
        adv = store.load(key) if store is not None else None
        if adv is None or len(adv) != len(chunk):
            adv = [a.detach().cpu().contiguous() for a in execute(chunk)]
            for unit, a in zip(chunk, adv, strict=True):
                check_perturbation(x[unit.index], a, eps)
            if store is not None:
                store.save(key, adv)
        results.append(adv)
        if on_chunk is not None:
            on_chunk()
        if should_stop is not None and should_stop():
            raise Interrupted(saved=store.where if store is not None else "nothing (no state folder)")
    return results


def assemble(units_by_chunk: Sequence[list[Unit]], results: Sequence[list[Tensor]],
             out: Tensor, *, by_crafter: bool = False) -> Tensor:
    """Write every unit's adversarial samples into ``out`` (``out[crafter]`` when
    ``by_crafter``, the transfer sets' (n, N, ...) layout)."""
    for chunk, advs in zip(units_by_chunk, results, strict=True):
        for unit, adv in zip(chunk, advs, strict=True):
            target = out[unit.crafter] if by_crafter else out
            target[unit.index] = adv.to(out.dtype)
    return out
