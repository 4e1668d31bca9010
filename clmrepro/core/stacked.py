"""A population of same-architecture submodels run as one batched computation.

The n submodels' parameters and buffers are stacked along a new leading dimension
(``torch.func.stack_module_state``, PyTorch's model-ensembling recipe, docs/reference.md §6); the
stacked tensors are optimisable leaves.  Every submodel still computes exactly its own
function of its own input:

- :meth:`StackedPopulation.each` routes block k of the input to submodel k (transfer
  crafting, ULM training: each submodel keeps its own data);
- :meth:`StackedPopulation.all` shows the same input to every submodel (scoring, the
  adaptive expected loss, saliency).

How it is computed.  For the architectures of ``core.models`` the population runs *packed*:
the activations of all n submodels sit side by side in the channel dimension, (B, n·C, H, W),
so each convolution is one grouped convolution (``groups = n``), each BatchNorm one BatchNorm
over n·C channels (its running statistics are views of the stacked buffers, so slice k is
updated as submodel k's would be), and each Linear one batched matmul.  The model's own
``forward`` runs unchanged on the packed tensor: it only uses per-channel operations (ReLU,
pooling, residual sums), flattens at 1×1 spatial size, and takes softmax over dimension 1 —
the last Linear returns (B, classes, n), so the n submodels look like n "pixels" of one
class map.  Any other architecture falls back to ``functional_call`` + ``vmap``.

Why packed and not ``vmap`` (2 CPU cores, shared machine, 1 thread; LeNet5, mnist-5k,
batch 100, Adam): one epoch of 10 submodels ran 1.0–1.35× as fast as the sequential loop with
the packed layout in channels_last and 0.70–0.77× in contiguous memory; one training step
under ``vmap`` ran 0.65–0.84× (its convolution rule builds the same grouped convolution, plus
a copy per layer).  PGD adversarial training (4 submodels, PGD-5): packed channels_last
1.8–2.1×, contiguous 1.2–1.5×.  On a GPU the win is fewer, larger kernels.  Numerically a
grouped convolution equals n separate ones only to float rounding in float32 (oneDNN orders
its weight-gradient sums differently, ~1e-7 relative); in float64, where ATen's reference
convolution runs one group at a time, it is bit-identical.  (Training-mode BatchNorm on a
channels_last CPU tensor is computed on contiguous memory: see ``_PackedBatchNorm2d``.)

BatchNorm in training mode updates the stacked running statistics in place, slice k for
submodel k, as n separate modules would.  ``write_to`` copies the stacked values back,
``read_from`` copies values in.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap


class StackedPopulation:
    """n submodels of one architecture as stacked parameters and one batched call.

    ``memory_format`` is the layout of the packed activations: channels_last (default, the
    faster one measured on CPU) or contiguous."""

    def __init__(self, models: Sequence[nn.Module], *, requires_grad: bool = False,
                 memory_format: torch.memory_format = torch.channels_last):
        if len(models) < 1:
            raise ValueError("a stacked population needs at least one submodel")
        kinds = {type(m) for m in models}
        if len(kinds) != 1:
            names = sorted(k.__name__ for k in kinds)
            raise ValueError(f"submodels must share one architecture (got {names})")
        self.n = len(models)
        self.memory_format = memory_format
        params, buffers = stack_module_state(list(models))
        self.params = {k: v.detach().requires_grad_(requires_grad) for k, v in params.items()}
        self.buffers = {k: v.detach() for k, v in buffers.items()}
        # The architecture without storage: functional_call / the packed modules supply it.
        self.base = copy.deepcopy(models[0]).to("meta")
        self.packed = _packed_copy(self.base, self) if _packable(models[0]) else None
        self.train(models[0].training)

    @property
    def training(self) -> bool:
        return self.base.training

    def train(self, mode: bool = True) -> "StackedPopulation":
        self.base.train(mode)
        if self.packed is not None:
            self.packed.train(mode)
        return self

    def eval(self) -> "StackedPopulation":
        return self.train(False)

    def parameters(self) -> list[Tensor]:
        """The stacked parameters (leaves; pass them to an optimizer to train all at once)."""
        return list(self.params.values())

    def _call(self, params: dict, buffers: dict, x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def _run_packed(self, h: Tensor) -> Tensor:
        out = self.packed(h.contiguous(memory_format=self.memory_format))  # (B, classes, n)
        return out.permute(2, 0, 1)

    def each(self, x: Tensor) -> Tensor:
        """Submodel k on block k: ``x`` of shape (n, B, ...) -> (n, B, classes)."""
        if x.shape[0] != self.n:
            raise ValueError(f"each() needs one input block per submodel: leading dimension "
                             f"{self.n} (got shape {tuple(x.shape)})")
        if self.packed is None:
            return vmap(self._call, in_dims=(0, 0, 0))(self.params, self.buffers, x)
        n, b, c = x.shape[:3]
        return self._run_packed(x.transpose(0, 1).reshape(b, n * c, *x.shape[3:]))

    def all(self, x: Tensor) -> Tensor:
        """Every submodel on the same input: ``x`` of shape (B, ...) -> (n, B, classes)."""
        if self.packed is None:
            return vmap(self._call, in_dims=(0, 0, None))(self.params, self.buffers, x)
        return self._run_packed(x)  # the first convolution sees C channels: groups = 1

    @torch.no_grad()
    def write_to(self, models: Sequence[nn.Module]) -> None:
        """Copy the stacked parameters and buffers back into ``models`` (slice k -> k)."""
        self._check_count(models, "write to")
        for k, model in enumerate(models):
            for name, tensor in model.named_parameters():
                tensor.copy_(self.params[name][k])
            for name, tensor in model.named_buffers():
                tensor.copy_(self.buffers[name][k])

    @torch.no_grad()
    def read_from(self, models: Sequence[nn.Module]) -> None:
        """Copy ``models``' parameters and buffers into the stacked tensors (k -> slice k),
        in place, so optimizers over :meth:`parameters` keep working."""
        self._check_count(models, "read from")
        for k, model in enumerate(models):
            for name, tensor in model.named_parameters():
                self.params[name][k].copy_(tensor)
            for name, tensor in model.named_buffers():
                self.buffers[name][k].copy_(tensor)

    def _check_count(self, models: Sequence[nn.Module], what: str) -> None:
        if len(models) != self.n:
            raise ValueError(f"expected {self.n} submodels to {what} (got {len(models)})")


# --- the packed layout ------------------------------------------------------------------


def _packable(model: nn.Module) -> bool:
    """The architectures whose ``forward`` keeps to the packed layout's rules (module
    docstring); checked against n separate modules in tests/unit/core/test_stacked.py."""
    from clmrepro.core.models import ARCHITECTURES

    return type(model) in ARCHITECTURES.values()


class _PackedConv2d(nn.Module):
    """n convolutions as one: groups ×n on packed input; groups = 1 on a shared input
    (the first layer under ``all``), whose C channels every submodel reads."""

    def __init__(self, conv: nn.Conv2d, name: str, pop: StackedPopulation):
        super().__init__()
        self.name, self.pop, self.conv = name, _Ref(pop), _Ref(conv)

    def forward(self, h: Tensor) -> Tensor:
        conv, pop = self.conv.obj, self.pop.obj
        w = pop.params[f"{self.name}.weight"]
        bias = pop.params.get(f"{self.name}.bias")
        packed_in = h.shape[1] == pop.n * conv.in_channels
        return F.conv2d(h, w.reshape(-1, *w.shape[2:]), None if bias is None else bias.reshape(-1),
                        conv.stride, conv.padding, conv.dilation,
                        conv.groups * (pop.n if packed_in else 1))


class _PackedBatchNorm2d(nn.Module):
    def __init__(self, bn: nn.BatchNorm2d, name: str, pop: StackedPopulation):
        super().__init__()
        if bn.momentum is None:  # a cumulative average would need num_batches_tracked per slice
            raise TypeError(f"cannot pack {name}: BatchNorm with momentum=None")
        self.name, self.pop, self.bn = name, _Ref(pop), _Ref(bn)

    def forward(self, h: Tensor) -> Tensor:
        bn, p, b = self.bn.obj, self.pop.obj.params, self.pop.obj.buffers
        use_batch = self.training or not bn.track_running_stats
        if self.training and bn.track_running_stats:
            with torch.no_grad():
                b[f"{self.name}.num_batches_tracked"].add_(1)  # as nn.BatchNorm2d counts
        stats = [b[f"{self.name}.running_{s}"].view(-1) if bn.track_running_stats else None
                 for s in ("mean", "var")]
        # batch statistics of a channels_last tensor on the CPU lose digits (1-3% gradient
        # error on MNIST; core.models.batch_norm_statistics_in_contiguous_memory): compute
        # them on contiguous memory and hand the convolutions channels_last back
        layout = None
        if use_batch and h.device.type == "cpu" and not h.is_contiguous():
            layout, h = self.pop.obj.memory_format, h.contiguous()
        out = F.batch_norm(h, *stats, p[f"{self.name}.weight"].reshape(-1),
                           p[f"{self.name}.bias"].reshape(-1), use_batch, bn.momentum, bn.eps)
        return out if layout is None else out.contiguous(memory_format=layout)


class _PackedLinear(nn.Module):
    """n linear maps as one batched matmul; (B, n·in) -> (B, n·out), or -> (B, out, n) for
    the model's last layer so that its dimension 1 holds the classes."""

    def __init__(self, name: str, pop: StackedPopulation, last: bool):
        super().__init__()
        self.name, self.pop, self.last = name, _Ref(pop), last

    def forward(self, h: Tensor) -> Tensor:
        pop = self.pop.obj
        w, bias = pop.params[f"{self.name}.weight"], pop.params.get(f"{self.name}.bias")
        n, out_features, in_features = w.shape
        hb = h.reshape(h.shape[0], n, in_features).transpose(0, 1)  # (n, B, in)
        if bias is None:
            y = torch.bmm(hb, w.transpose(1, 2))
        else:
            y = torch.baddbmm(bias.unsqueeze(1), hb, w.transpose(1, 2))  # (n, B, out)
        return y.permute(1, 2, 0) if self.last else y.transpose(0, 1).reshape(h.shape[0], -1)


class _Ref:
    """A plain reference, so a module is not registered as a child (no cycles in .train())."""

    def __init__(self, obj):
        self.obj = obj


def _packed_copy(base: nn.Module, pop: StackedPopulation) -> nn.Module:
    packed = copy.deepcopy(base)
    linears = [name for name, m in packed.named_modules() if isinstance(m, nn.Linear)]
    for name, module in list(packed.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Conv2d):
                setattr(module, child_name, _PackedConv2d(child, full, pop))
            elif isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, _PackedBatchNorm2d(child, full, pop))
            elif isinstance(child, nn.Linear):
                setattr(module, child_name, _PackedLinear(full, pop, last=full == linears[-1]))
            elif next(child.parameters(recurse=False), None) is not None:
                raise TypeError(f"cannot pack a {type(child).__name__} ({full})")
    return packed
