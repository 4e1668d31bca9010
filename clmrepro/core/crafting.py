"""What is crafted on which submodel with which seed, checked and saved chunk by chunk.

This module plans an attack's work without running it and without importing torchattacks
(importing torch + torchattacks took 16 s on a loaded machine; the evaluate step and the
batched attacks need neither).  The executors that do the work are
``core.attacks`` (torchattacks, sequential), ``core.batched_attacks`` (the population as
one batched computation) and ``core.adaptive``.

One attack call is a :class:`Unit`: the samples ``index`` crafted on submodel ``crafter``
(``None``: against the whole population) after reseeding with ``seed``.  Every unit draws
its randomness from its own seed, so a unit's result does not depend on which units ran
before it, and a job can be cut into chunks of units that are saved as they finish and
resumed after a crash (issue 12).  The seeds are the ones the sequential code always used:

- ``paper`` (eq. 6): samples grouped by crafting submodel k, cut into batches;
  seed ``derive_seed(derive_seed(seed, "paper", k), start)``, ``start`` the batch's
  offset inside group k.  With ``per-batch`` crafters (the authors' code, REFERENCE.md §1)
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

from clmrepro.core.interrupt import Interrupted, StopCheck
from clmrepro.core.seeding import derive_seed

ATTACK_KINDS = ("fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd")

REQUIRED_PARAMS: dict[str, frozenset[str]] = {
    "fgsm": frozenset(),
    "pgd": frozenset({"alpha", "steps", "random_start"}),
    "mifgsm": frozenset({"alpha", "steps", "decay"}),
    "eot-pgd": frozenset({"alpha", "steps", "eot_iter", "random_start"}),
    "autoattack": frozenset(
        {"version", "norm", "n_classes", "steps", "n_queries", "n_restarts", "eot_iter"}
    ),
}

CRAFTING_MODES = ("per-batch", "per-sample")
THREAT_MODELS = ("paper", "transfer", "adaptive")


class PerturbationError(ValueError):
    """An adversarial batch left the L-infinity eps-ball or the pixel range [0, 1]."""


def check_params(kind: str, params: dict) -> None:
    if kind not in REQUIRED_PARAMS:
        raise ValueError(f"attack kind must be one of {', '.join(ATTACK_KINDS)} (got {kind!r})")
    given = set(params)
    missing = sorted(REQUIRED_PARAMS[kind] - given)
    unknown = sorted(given - REQUIRED_PARAMS[kind])
    if missing or unknown:
        raise ValueError(
            f"attack {kind!r}: params must have exactly the keys "
            f"{sorted(REQUIRED_PARAMS[kind])}; missing {missing}, unknown {unknown}"
        )


def check_perturbation(x: Tensor, x_adv: Tensor, eps: float, atol: float = 1e-6) -> None:
    """Raise :class:`PerturbationError` unless ``x_adv`` is within ``eps`` of ``x`` in
    L-infinity and inside [0, 1] (3.5.x no longer checks the range; REFERENCE.md §2)."""
    if x.shape != x_adv.shape:
        raise PerturbationError(f"shape changed: {tuple(x.shape)} -> {tuple(x_adv.shape)}")
    if not torch.isfinite(x_adv).all():
        raise PerturbationError("adversarial batch holds NaN or infinite values")
    if x_adv.numel() == 0:
        return
    dist = (x_adv.detach().cpu().double() - x.detach().cpu().double()).abs().max().item()
    if dist > eps + atol:
        raise PerturbationError(f"L-inf distance {dist:.8g} exceeds eps {eps:.8g}")
    low, high = x_adv.min().item(), x_adv.max().item()
    if low < -atol or high > 1 + atol:
        raise PerturbationError(f"values span [{low:.8g}, {high:.8g}], outside [0, 1]")


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


def deterministic_attack(kind: str, params: dict) -> tuple[str, dict]:
    """The attack to run against one deterministic submodel (threat models ``paper`` and
    ``transfer``): EOT-PGD becomes PGD with the same step, steps and random start.

    torchattacks ``EOTPGD`` adds ``eot_iter`` gradients of the same model; against an
    eval-mode submodel they are identical, and sign(k * g) = sign(g), so the adversarial
    examples are the same and ``eot_iter`` times cheaper (REFERENCE.md §2; checked against
    ``torchattacks.EOTPGD`` in tests/unit/core/test_batched_attacks.py).  Records keep the
    job's EOT-PGD parameters, which the result equals.
    """
    check_params(kind, params)
    if kind == "eot-pgd":
        return "pgd", {k: params[k] for k in ("alpha", "steps", "random_start")}
    return kind, dict(params)


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


def make_executor(models, x: Tensor, y: Tensor, *, kind: str, eps: float, params: dict,
                  runtime) -> "Executor":
    """The executor of ``paper``/``transfer`` units: batched where ``runtime`` asks for it
    and the attack allows it (not AutoAttack), else torchattacks one submodel at a time.
    Imported here on demand, so a batched job never imports torchattacks."""
    from clmrepro.core.batched_attacks import BATCHED_KINDS

    if runtime.batched and kind in BATCHED_KINDS:
        from clmrepro.core.batched_attacks import BatchedExecutor

        return BatchedExecutor(models, x, y, kind=kind, eps=eps, params=params, runtime=runtime)
    from clmrepro.core.attacks import SequentialExecutor

    return SequentialExecutor(models, x, y, kind=kind, eps=eps, params=params,
                              device=runtime.device)


# --- running chunks, saving each -----------------------------------------------------------

class Executor(Protocol):
    """Crafts a chunk of units, one adversarial tensor per unit.  ``units_per_call`` is the
    chunk size it works best with (and the granularity of saved state)."""

    units_per_call: int

    def __call__(self, chunk: list[Unit]) -> list[Tensor]: ...


class ChunkStoreLike(Protocol):
    """What :func:`craft_chunks` needs of a store (``core.attack_state.ChunkStore``)."""

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
