"""Inference rules: how a population answers a query.

- ``random``: the paper's random dispatch; each query answered by one submodel drawn
  uniformly, scored exactly by its expected accuracy (MRA, eq. 6; ``core.metrics``).
- ``average``: the mean of the submodels' outputs, then argmax.  The outputs are averaged
  as the models return them: logits for ResNet18, log-probabilities for LeNet5 (so LeNet5's
  average is a normalised geometric mean of the probabilities).  A deterministic,
  differentiable classifier (:class:`AveragedPopulation`): white-box attacks target it as
  one model.
- ``vote``: each submodel's argmax is a vote; the most voted class wins, a tie going to the
  lowest class index among the tied (deterministic; a tie-break by averaged outputs would
  make vote depend on the scale of each submodel's outputs).

Both deterministic rules are scored as one classifier: a boolean per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

INFERENCE_RULES = ("random", "average", "vote")


class AveragedPopulation(nn.Module):
    """The ``average`` rule as a module: forward(x) = (1/n) Σ_i model_i(x)."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if len(models) < 1:
            raise ValueError("an averaged population needs at least one submodel")
        self.models = nn.ModuleList(models)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([m(x) for m in self.models]).mean(dim=0)


def vote(preds: Tensor, num_classes: int) -> Tensor:
    """Plurality of ``preds`` (n, B) predicted labels -> (B,); ties to the lowest label."""
    counts = torch.zeros(preds.shape[1], num_classes, dtype=torch.long, device=preds.device)
    counts.scatter_add_(1, preds.t(), torch.ones_like(preds.t()))
    return counts.argmax(dim=1)  # argmax returns the first maximum: the lowest label


@torch.no_grad()
def rule_correctness(models: Sequence[nn.Module], x: Tensor, y: Tensor, rule: str, *,
                     batch_size: int, device, num_classes: int = 10) -> Tensor:
    """Whether the population under ``rule`` (average | vote) classifies each image right:
    booleans, shape (N,)."""
    if rule not in ("average", "vote"):
        raise ValueError(f"rule must be average or vote (got {rule!r}); random is scored "
                         "per submodel (core.metrics)")
    for model in models:
        model.eval()
    correct = torch.empty(len(x), dtype=torch.bool)
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device)
        outputs = torch.stack([m(xb) for m in models])          # (n, B, classes)
        if rule == "average":
            labels = outputs.mean(dim=0).argmax(dim=1)
        else:
            labels = vote(outputs.argmax(dim=2), max(num_classes, outputs.shape[-1]))
        correct[start:start + len(xb)] = (labels.cpu() == y[start:start + len(xb)].cpu())
    return correct
