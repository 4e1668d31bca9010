"""Counter-linking: the Parameter Re-Scaling Event (PRSE) of the paper, eq. 4–5 and Alg. 1.

Every ``prse_every`` minibatches of submodel i, a partner j ≠ i is drawn uniformly and

    β = |W_i − W_j| < δ            (eq. 4, elementwise on the counter-linked layer l = 1)
    W_i ← W_i + (−1)^i · α · β · ℓ  (eq. 5, ℓ ~ Bernoulli(0.5) fixed for the whole run)

with 0-based i as in the authors' code (docs/reference.md §1): even i move up, odd i down.
The partner is not changed and the write bypasses the optimiser.
"""

from __future__ import annotations

import functools

import torch

MASK_MODES = ("shared", "per-weight")


def make_mask(weight_shape: tuple[int, ...], mode: str, gen: torch.Generator) -> torch.Tensor:
    """The fixed mask ℓ as a float 0/1 tensor.

    ``shared``: one kernel-shaped mask (in_channels, k, k) used by every filter, as the
    authors' code draws it (``randint(2, size=(in_channels, k, k))``).  ``per-weight``: one
    entry per weight of the layer, the reading of the paper's text.
    """
    shape = tuple(weight_shape)
    if mode == "shared":
        shape = shape[1:]
    elif mode != "per-weight":
        raise ValueError(f"mask must be one of {', '.join(MASK_MODES)} (got {mode!r})")
    return torch.randint(0, 2, shape, generator=gen).to(torch.float32)


def choose_partner(i: int, n: int, gen: torch.Generator) -> int:
    """A partner j drawn uniformly from {0, …, n−1} \\ {i} (Alg. 1)."""
    if n < 2:
        raise ValueError(f"counter-linking needs at least 2 submodels (got {n})")
    if not 0 <= i < n:
        raise ValueError(f"submodel index must be in [0, {n}) (got {i})")
    # draw from the n − 1 others and skip over i: uniform without rejection loops
    j = int(torch.randint(0, n - 1, (1,), generator=gen).item())
    return j + 1 if j >= i else j


@functools.lru_cache(maxsize=8)
def _mask_on(mask: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return mask.to(device=device, dtype=dtype)


def mask_like(mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The run's fixed mask on the weight's device and dtype, copied there once per run, not at
    every examination (a host-to-GPU copy each time).  Keyed by the mask tensor itself: a run's
    mask never changes after make_mask."""
    return _mask_on(mask, weight.device, weight.dtype)


def prse(
    weight_i: torch.Tensor,
    weight_j: torch.Tensor,
    *,
    index: int,
    alpha: float,
    delta: float,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Apply eq. 4–5 to ``weight_i`` in place and return β (float 0/1, shape of the weight).

    ``mask`` is either the full weight shape or the kernel shape, broadcast over filters.
    Runs under ``no_grad`` on the parameter's data so autograd and the optimiser never see it.
    """
    with torch.no_grad():
        beta = ((weight_i - weight_j).abs() < delta).to(weight_i.dtype)  # eq. 4
        sign = 1.0 if index % 2 == 0 else -1.0  # (−1)^i with 0-based i
        step = beta * mask_like(mask, weight_i)
        weight_i.add_(step, alpha=sign * alpha)  # eq. 5
    return beta
