"""How the attack and scoring forward passes run: one submodel at a time or the population
as one batched computation, in fp32 or bf16 autocast, with a given memory format.

The job's ``execution`` block (docs/architecture.md) names the choices:

- ``population``: ``sequential`` (torchattacks on one submodel at a time, the reference),
  ``batched`` (``core.stacked.StackedPopulation``: n small kernels become one large one,
  the lever on a GPU, docs/reference.md §6) or ``auto`` = batched on CUDA, sequential on CPU.
- ``precision``: ``fp32`` (the authors') or ``bf16``: forward passes under
  ``torch.autocast(dtype=bfloat16)``, losses in fp32.  A departure from the paper; meant
  for CUDA, allowed on CPU (slow there, but it must not crash).
- ``memory_format``: ``contiguous`` or ``channels_last`` for the submodels' weights
  (numerically equivalent within float tolerance).  Inputs stay contiguous: torchattacks
  draws its random start with ``empty_like(images).uniform_``, which fills in memory
  order, so a channels_last input would place the same draws at other pixels.
- ``max_models`` (set by the plan where a job would not fit the spec's ``gpu_memory_gb``,
  plan.memory.size_to_card): a batched attack crafts with at most that many submodels per
  call (core.attacks.batched); every unit keeps its images and seed, so the sets are the same
  within float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

POPULATION_MODES = ("auto", "sequential", "batched")
PRECISIONS = ("fp32", "bf16")
MEMORY_FORMATS = ("contiguous", "channels_last")


def _choice(execution: dict, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = execution.get(key, default)
    if value not in allowed:
        raise ValueError(f"execution.{key} must be one of {', '.join(allowed)} (got {value!r})")
    return value


def _positive(execution: dict, key: str) -> int | None:
    value = execution.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"execution.{key} must be a positive integer (got {value!r})")
    return value


@dataclass(frozen=True)
class AttackRuntime:
    """Resolved execution settings of one attack/evaluate job on one device."""

    device: torch.device
    batched: bool = False
    precision: str = "fp32"
    memory_format: str = "contiguous"
    max_models: int | None = None

    @classmethod
    def from_execution(cls, execution: dict | None, device: torch.device | str) -> "AttackRuntime":
        """``execution`` as in the job's params (None or missing keys: the defaults)."""
        execution = execution or {}
        device = torch.device(device)
        mode = _choice(execution, "population", POPULATION_MODES, "auto")
        return cls(
            device=device,
            batched=(device.type == "cuda") if mode == "auto" else mode == "batched",
            precision=_choice(execution, "precision", PRECISIONS, "fp32"),
            memory_format=_choice(execution, "memory_format", MEMORY_FORMATS, "contiguous"),
            max_models=_positive(execution, "max_models"),
        )

    @property
    def path(self) -> str:
        return "batched" if self.batched else "sequential"

    def describe(self) -> dict:
        """What the fingerprint of resumable state and the logs record."""
        return {"population": self.path, "precision": self.precision,
                "memory_format": self.memory_format, "device": self.device.type}

    def autocast(self) -> AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def prepare(self, models: Sequence[nn.Module]) -> list[nn.Module]:
        """The submodels in eval mode, on the device, in the memory format; under bf16
        each is wrapped so that a caller (torchattacks) sees fp32 outputs."""
        fmt = torch.channels_last if self.memory_format == "channels_last" else torch.contiguous_format
        ready = [m.to(self.device, memory_format=fmt).eval() for m in models]
        if self.precision == "bf16":
            ready = [Autocast(m, self.device.type).eval() for m in ready]
        return ready

    def stack(self, models: Sequence[nn.Module]):
        """The submodels as one ``StackedPopulation`` (eval mode); ``models`` as given to
        :meth:`prepare` or as it returned them."""
        from clmrepro.core.stacked import StackedPopulation

        plain = [m.inner if isinstance(m, Autocast) else m for m in models]
        return StackedPopulation(plain).eval()


class Autocast(nn.Module):
    """``inner`` run under bf16 autocast, its output cast back to fp32 (the loss and the
    attack's sign step stay in fp32)."""

    def __init__(self, inner: nn.Module, device_type: str):
        super().__init__()
        self.inner = inner
        self.device_type = device_type

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            out = self.inner(x)
        return out.float()
