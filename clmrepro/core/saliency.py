"""Saliency maps (eq. 8), their pairwise cosine similarity (eq. 7) and conv1 spread.

Fig. 6 of the paper plots, for every pair of submodels of a population ((n^2 - n)/2
pairs), the cosine similarity of their saliency maps on each test input.  ``f(x)[y]`` is
the submodel's output as it stands: log-probabilities for LeNet5 (the authors' model ends
in LogSoftmax), logits for ResNet18; the paper does not say which output it used.

On the batched path (``core.runtime``) all n maps of a batch come from one
``StackedPopulation.each`` call on the input repeated n times: block k's output depends on
block k's copy only, so the gradient of the summed scores is each submodel's own map
(``.all`` would share one input and sum the n gradients).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clmrepro.core.models import counter_linked_layer
from clmrepro.core.runtime import AttackRuntime


def saliency_maps(model: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 256) -> Tensor:
    """Eq. 8: s = d f(x)[y] / dx for every sample, same shape as ``x``.

    The model is in eval mode, so with BatchNorm frozen each sample's output depends on
    that sample only and the gradient of the batch sum is each sample's own gradient.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    maps = []
    try:
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device).detach().requires_grad_(True)
            yb = y[start:start + batch_size].to(device)
            score = model(xb).gather(1, yb.view(-1, 1)).sum()
            maps.append(torch.autograd.grad(score, xb)[0].detach().cpu())
    finally:
        model.train(was_training)
    return torch.cat(maps)


def population_saliency_maps(models: Sequence[nn.Module], x: Tensor, y: Tensor, *,
                             batch_size: int = 256,
                             runtime: AttackRuntime | None = None) -> Tensor:
    """Eq. 8 for every submodel, shape (n, N, ...): one submodel at a time, or batched."""
    if runtime is None or not runtime.batched:
        return torch.stack([saliency_maps(m, x, y, batch_size=batch_size) for m in models])
    stacked = runtime.stack(models)
    device = runtime.device
    maps = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        yb = y[start:start + batch_size].to(device)
        blocks = xb.expand(len(models), *xb.shape).clone().requires_grad_(True)
        with runtime.autocast():
            out = stacked.each(blocks)
        score = out.float().gather(2, yb.view(1, -1, 1).expand(len(models), -1, 1)).sum()
        maps.append(torch.autograd.grad(score, blocks)[0].detach().cpu())
    return torch.cat(maps, dim=1)


def pairwise_saliency_cosine(models: Sequence[nn.Module], x: Tensor, y: Tensor, *,
                             batch_size: int = 256,
                             runtime: AttackRuntime | None = None) -> dict[str, list[float]]:
    """Eq. 7 for every pair i < j (0-based keys "i-j"): one cosine per input sample."""
    maps = population_saliency_maps(models, x, y, batch_size=batch_size, runtime=runtime)
    flat = [m.flatten(1).double() for m in maps]
    result = {}
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            # eps guards a zero saliency map (a saturated output); it then reports 0.
            cos = F.cosine_similarity(flat[i], flat[j], dim=1, eps=1e-30)
            result[f"{i}-{j}"] = cos.tolist()
    return result


def conv1_std(models: Sequence[nn.Module]) -> list[float]:
    """Spread of each submodel's counter-linked layer (conv1) weights: the sample standard
    deviation over all its weights, which PRSE (eq. 4-5) is meant to push apart."""
    return [float(counter_linked_layer(m).weight.detach().double().std()) for m in models]
