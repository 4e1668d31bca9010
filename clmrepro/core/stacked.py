"""A population of same-architecture submodels run as one batched computation.

PyTorch's model-ensembling recipe (REFERENCE.md §6): the n submodels' parameters and buffers
are stacked along a new leading dimension (``torch.func.stack_module_state``) and one
``functional_call`` of a parameter-free copy of the architecture is ``vmap``-ed over them.
On a GPU this turns n small kernels into one large one (the lever for LeNet5); every
submodel still computes exactly its own function of its own input:

- :meth:`StackedPopulation.each` routes block k of the input to submodel k (transfer
  crafting, ULM training: each submodel keeps its own data);
- :meth:`StackedPopulation.all` shows the same input to every submodel (scoring, the
  adaptive expected loss, saliency).

BatchNorm in training mode updates the stacked running statistics in place, slice k for
submodel k, as n separate modules would.  ``write_to`` copies the stacked values back.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap


class StackedPopulation:
    """n submodels of one architecture as stacked parameters and one batched call."""

    def __init__(self, models: Sequence[nn.Module], *, requires_grad: bool = False):
        if len(models) < 1:
            raise ValueError("a stacked population needs at least one submodel")
        kinds = {type(m) for m in models}
        if len(kinds) != 1:
            names = sorted(k.__name__ for k in kinds)
            raise ValueError(f"submodels must share one architecture (got {names})")
        self.n = len(models)
        params, buffers = stack_module_state(list(models))
        self.params = {k: v.detach().requires_grad_(requires_grad) for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        # The architecture without storage: functional_call supplies every tensor.
        self.base = copy.deepcopy(models[0]).to("meta")
        self.base.train(models[0].training)

    @property
    def training(self) -> bool:
        return self.base.training

    def train(self, mode: bool = True) -> "StackedPopulation":
        self.base.train(mode)
        return self

    def eval(self) -> "StackedPopulation":
        return self.train(False)

    def parameters(self) -> list[Tensor]:
        """The stacked parameters (leaves; pass them to an optimizer to train all at once)."""
        return list(self.params.values())

    def _call(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def each(self, x: Tensor) -> Tensor:
        """Submodel k on block k: ``x`` of shape (n, B, ...) -> (n, B, classes)."""
        if x.shape[0] != self.n:
            raise ValueError(f"each() needs one input block per submodel: leading dimension "
                             f"{self.n} (got shape {tuple(x.shape)})")
        return vmap(self._call, in_dims=(0, 0, 0))(self.params, self.buffers, x)

    def all(self, x: Tensor) -> Tensor:
        """Every submodel on the same input: ``x`` of shape (B, ...) -> (n, B, classes)."""
        return vmap(self._call, in_dims=(0, 0, None))(self.params, self.buffers, x)

    @torch.no_grad()
    def write_to(self, models: Sequence[nn.Module]) -> None:
        """Copy the stacked parameters and buffers back into ``models`` (slice k -> k)."""
        if len(models) != self.n:
            raise ValueError(f"expected {self.n} submodels to write to (got {len(models)})")
        for k, model in enumerate(models):
            for name, tensor in model.named_parameters():
                tensor.copy_(self.params[name][k])
            for name, tensor in model.named_buffers():
                tensor.copy_(self.buffers[name][k])
