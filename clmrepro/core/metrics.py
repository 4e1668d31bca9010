"""Scores of a population: per-submodel accuracy, MRA (eq. 6) and the transfer matrix.

Every submodel classifies every sample (eq. 6 sums rho(m_i, x'_j) over all i and j), so a
batch is moved to the device once and shown to all submodels: in turn, or on the batched
path (``core.runtime``) in one ``StackedPopulation.all`` call giving all n x B
predictions at once.  Argmax of bf16 outputs (``precision: bf16``) may differ from fp32
where two classes are within rounding of each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from clmrepro.core.runtime import AttackRuntime

Classifier = Callable[[Tensor], Tensor]  # (B, ...) -> (n, B) predicted labels


def population_classifier(models: Sequence[nn.Module],
                          runtime: AttackRuntime | None = None) -> Classifier:
    """A function giving every submodel's predictions on a batch, shape (n, B)."""
    for model in models:
        model.eval()
    if runtime is not None and runtime.batched:
        stacked = runtime.stack(models)

        def batched(xb: Tensor) -> Tensor:
            with runtime.autocast():
                return stacked.all(xb).argmax(dim=-1)

        return batched
    autocast = runtime.autocast if runtime is not None else None

    def sequential(xb: Tensor) -> Tensor:
        if autocast is None:
            return torch.stack([m(xb).argmax(dim=1) for m in models])
        with autocast():
            return torch.stack([m(xb).argmax(dim=1) for m in models])

    return sequential


@torch.no_grad()
def predictions(models: Sequence[nn.Module], x: Tensor, *, batch_size: int, device,
                runtime: AttackRuntime | None = None,
                classify: Classifier | None = None) -> Tensor:
    """Predicted labels, shape (n_models, N); argmax works on logits and log-probs alike."""
    classify = classify or population_classifier(models, runtime)
    preds = torch.empty((len(models), len(x)), dtype=torch.long)
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        preds[:, start:start + len(xb)] = classify(xb).cpu()
    return preds


def correctness(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, batch_size: int,
                device, runtime: AttackRuntime | None = None,
                classify: Classifier | None = None) -> Tensor:
    """rho(m_i, x'_j) of eq. 6 for every submodel and image: booleans, shape (n, N)."""
    preds = predictions(models, x, batch_size=batch_size, device=device, runtime=runtime,
                        classify=classify)
    return preds == y.cpu().view(1, -1)


def per_submodel_accuracy(models: Sequence[nn.Module], x: Tensor, y: Tensor, *,
                          batch_size: int, device, runtime: AttackRuntime | None = None,
                          classify: Classifier | None = None) -> Tensor:
    """The inner sum of eq. 6 for every submodel: (1/N) sum_j rho(m_i, x'_j), shape (n,)."""
    return correctness(models, x, y, batch_size=batch_size, device=device, runtime=runtime,
                       classify=classify).double().mean(dim=1)


def model_robustness_average(per_submodel: Tensor | Sequence[float]) -> float:
    """Eq. 6: MRA = (1/n) sum_i acc_i."""
    values = torch.as_tensor(per_submodel, dtype=torch.float64).flatten()
    if values.numel() == 0:
        raise ValueError("MRA of an empty population is undefined")
    return float(values.mean())


def transfer_correctness(models: Sequence[nn.Module], x_adv_by_crafter: Tensor, y: Tensor, *,
                         batch_size: int, device, runtime: AttackRuntime | None = None) -> Tensor:
    """[i, k, j] = submodel k classifies image j crafted on submodel i right, (n, n, N)."""
    n = len(models)
    if x_adv_by_crafter.shape[0] != n:
        raise ValueError(f"expected {n} crafted sets, got {x_adv_by_crafter.shape[0]}")
    classify = population_classifier(models, runtime)
    return torch.stack([correctness(models, x_adv_by_crafter[i], y, batch_size=batch_size,
                                    device=device, classify=classify) for i in range(n)])


def transfer_matrix(models: Sequence[nn.Module], x_adv_by_crafter: Tensor, y: Tensor, *,
                    batch_size: int, device, runtime: AttackRuntime | None = None) -> Tensor:
    """[i, j] = accuracy of submodel j on the set crafted on submodel i (DVERGE/TRS style)."""
    return transfer_correctness(models, x_adv_by_crafter, y, batch_size=batch_size,
                                device=device, runtime=runtime).double().mean(dim=-1)


def transfer_summary(matrix: Tensor | Sequence[Sequence[float]]) -> dict:
    """White-box diagonal, off-diagonal mean, best and worst crafting->scoring pairs.

    ``best_pair`` is the pair i != j where submodel j resists examples crafted on i most
    (the paper's 2 -> 5), ``worst_pair`` the least (its 1 -> 9).  ``per_submodel[j]`` is
    the mean over crafters i != j, so its mean is the off-diagonal mean (the record's MRA).
    Indices are 0-based; the paper counts from 1.
    """
    m = torch.as_tensor(matrix, dtype=torch.float64)
    n = m.shape[0]
    if m.shape != (n, n) or n < 2:
        raise ValueError(f"transfer matrix must be n x n with n >= 2 (got {tuple(m.shape)})")
    off = ~torch.eye(n, dtype=torch.bool)
    pairs = [(m[i, j].item(), i, j) for i in range(n) for j in range(n) if i != j]
    # Ties go to the lowest (i, j) so the summary is deterministic.
    best = max(pairs, key=lambda t: (t[0], -t[1], -t[2]))
    worst = min(pairs, key=lambda t: (t[0], t[1], t[2]))
    per_submodel = (m * off).sum(dim=0) / (n - 1)
    return {
        "matrix": m.tolist(),
        "diagonal": torch.diagonal(m).tolist(),
        "off_diagonal_mean": float(m[off].mean()),
        "best_pair": [best[1], best[2], best[0]],
        "worst_pair": [worst[1], worst[2], worst[0]],
        "per_submodel": per_submodel.tolist(),
    }
