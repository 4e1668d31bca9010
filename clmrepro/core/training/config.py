"""What a training run is told: the science (optimiser, PRSE, PGD) and how to execute it.

The first three configs are the paper's knobs (docs/architecture.md, train job params).
``ExecutionConfig`` says how the same science is computed; ``resolve`` turns it into the
``Execution`` that actually runs on a device.  Only ``bf16`` and the ``lockstep`` CLM
schedule change the science (departures from the paper); everything else is equal to float
rounding, though a resumed run still insists on the same resolved execution, because float
rounding is enough to break bit-identical resumption.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    optimizer: str  # "adam" | "sgd"
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "none"  # "none" | "cosine" (stepped once per epoch, as the authors' code)
    t_max: int = 0  # cosine period in epochs; 0 means ``epochs``
    augment: bool = False  # random crop (padding 4) + horizontal flip, CIFAR-10 only
    eval_batch_size: int = 500


@dataclass
class LinkingConfig:
    alpha: float  # α of eq. 5
    delta: float  # δ of eq. 4
    prse_every: int  # one PRSE every this many minibatches of a submodel
    mask: str = "shared"  # "shared" (authors' code) | "per-weight" (paper text)
    layer: str = "conv1"  # l = 1; the only layer the paper counter-links


@dataclass
class AdversarialConfig:
    eps: float
    alpha: float
    steps: int
    random_start: bool = True


class JointLoss(Protocol):
    """A baseline's loss on one shared batch (its regime module in clmrepro.kinds.regimes
    builds it from core.training.diversity): ``knobs`` are the job's diversity params,
    ``forward`` maps (m, B, ...) to (m, B, classes) through the members, ``x`` (B, ...) and
    ``y`` (B,) the batch, ``x_target`` the batch of the second order (None without one),
    ``gen`` the run's diversity generator.  Returns (loss, outputs (m, B, classes) on the
    clean batch, the loss's terms as detached 0-dim tensors)."""

    def __call__(self, knobs: dict, forward: Callable[[torch.Tensor], torch.Tensor],
                 models: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                 x_target: torch.Tensor | None, gen: torch.Generator, *, epoch: int,
                 epochs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, dict]: ...


@dataclass
class DiversityConfig:
    """A baseline's joint training (core.training.joint): ``method`` its regime kind (adp |
    gal | trs | dverge, kept in the record), ``params`` its knobs as the job file gives them
    (e.g. {"alpha": 2.0, ...}), ``loss`` the loss of one shared batch, and ``target_order``
    whether each minibatch is paired with one of a second shuffled order (DVERGE distils
    towards those images)."""

    method: str
    params: dict
    loss: JointLoss = field(repr=False, compare=False)
    target_order: bool = False

    @classmethod
    def from_block(cls, block: dict, *, loss: JointLoss,
                   target_order: bool = False) -> "DiversityConfig":
        params = {k: v for k, v in block.items() if k != "method"}
        return cls(method=block["method"], params=params, loss=loss, target_order=target_order)


POPULATION_MODES = ("auto", "sequential", "batched")
MEMORY_FORMATS = ("contiguous", "channels_last")
PRECISIONS = ("fp32", "bf16")
CLM_SCHEDULES = ("sequential", "lockstep")


@dataclass
class ExecutionConfig:
    """The job's ``execution`` block (docs/architecture.md); the defaults are the authors' setting."""

    population: str = "auto"  # auto = batched on CUDA, sequential on CPU
    # channels_last: the fast layout for batched LeNet5 on CPU.  PyTorch's CPU channels-last
    # BatchNorm loses digits in training mode (LeNet5 gradients 1-7% off float64 on MNIST), so
    # on the CPU the batch statistics are computed on contiguous memory (core.models.
    # batch_norm_statistics_in_contiguous_memory, core.stacked): equal within float rounding.
    memory_format: str = "contiguous"
    precision: str = "fp32"  # bf16 = autocast(bfloat16) + channels_last; a departure
    clm_schedule: str = "sequential"  # Alg. 1; lockstep is a departure
    # the card the plan sized the job to (informational) and what it asked for: at most this
    # many submodels in one stacked step (plan.memory.size_to_card); None: all of them
    gpu_memory_gb: float | None = None
    max_models: int | None = None

    def __post_init__(self):
        if self.max_models is not None and (isinstance(self.max_models, bool)
                                            or not isinstance(self.max_models, int)
                                            or self.max_models < 1):
            raise ValueError(f"execution.max_models must be a positive integer "
                             f"(got {self.max_models!r})")
        for key, allowed in (("population", POPULATION_MODES), ("memory_format", MEMORY_FORMATS),
                             ("precision", PRECISIONS), ("clm_schedule", CLM_SCHEDULES)):
            value = getattr(self, key)
            if value not in allowed:
                raise ValueError(f"execution.{key} must be one of {', '.join(allowed)} (got {value!r})")

    def resolve(self, device: torch.device, *, linked: bool) -> "Execution":
        batched = self.population == "batched" or (self.population == "auto" and device.type == "cuda")
        # ULM submodels never interact, so stepping them together changes nothing but the
        # kernels; CLM does so only when asked, since Alg. 1 lets one submodel run at a time.
        lockstep = self.clm_schedule == "lockstep" if linked else batched
        return Execution(
            schedule="lockstep" if lockstep else "sequential",
            stacked=batched and lockstep,
            channels_last=self.memory_format == "channels_last" or self.precision == "bf16",
            bf16=self.precision == "bf16",
            max_models=self.max_models if batched and lockstep else None,
        )


@dataclass(frozen=True)
class Execution:
    """How a run is computed.  ``schedule``: "sequential" (Alg. 1: each submodel makes its
    full pass in turn) or "lockstep" (every submodel takes minibatch b before any takes b+1);
    ``stacked``: the submodels of a lockstep run step as one ``StackedPopulation``, or as
    stacks of at most ``max_models`` (None: one stack of all; the same numbers within float
    rounding, less GPU memory)."""

    schedule: str
    stacked: bool
    channels_last: bool
    bf16: bool
    max_models: int | None = None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)


def make_optimizer(cfg: TrainConfig, params: nn.Module | Iterable[torch.Tensor]) -> torch.optim.Optimizer:
    """The authors' optimisers.  Adam and SGD (momentum, weight decay) act elementwise, so one
    optimiser over stacked parameters updates each slice exactly as n optimisers would."""
    params = params.parameters() if isinstance(params, nn.Module) else params
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be adam or sgd (got {cfg.optimizer!r})")


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer):
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.t_max or cfg.epochs)
    raise ValueError(f"schedule must be none or cosine (got {cfg.schedule!r})")
