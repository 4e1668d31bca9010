"""Each job's peak GPU memory, from shapes: what autograd keeps per image, the weights, their
gradients and optimiser moments, and how many image-model pairs run at once (issue 30).

Activations: what autograd saves for backward, per image and model, for 32×32 inputs
(``saved_per_image``): a convolution keeps its input, BatchNorm in training its input (= the
convolution's output), ReLU its output, max-pool its input and int64 indices, Linear its input,
log-softmax its output; a tensor two ops keep counts once, an output that only feeds an add
(BasicBlock's bn2) is not kept.  This is the arithmetic
``tests/unit/plan/test_memory.py`` checks against peaks measured on the CPU (LeNet5 and
ResNet18; on CUDA cuDNN keeps the same tensors, plus a convolution workspace not counted here).
LeNet5: 74,776 bytes per image; ResNet18 (3 channels): 4.70 MB.  The peak of a training step
is at the end of its forward pass: backward frees saved tensors as fast as it makes
gradients (measured on the CPU: the whole step's peak is the saved tensors, the weights, their
gradients and moments, within 5%).

How many at once, from the code's execution paths:

- ULM and other unlinked training under ``population: auto`` or ``batched`` on CUDA: every
  submodel's minibatch in one stacked step (n × batch); CLM (Alg. 1, ``clm_schedule:
  sequential``) one submodel at a time.
- joint regimes (core.training.joint): every member's forward before one backward; GAL and TRS
  differentiate input gradients (``create_graph``: about twice the saved tensors), DVERGE runs
  each member on the m − 1 other members' distilled images (m − 1 forward passes kept).
- attack, sanity: a chunk is n units of ``batch_size`` images, each through one model or through
  all n (adaptive), with input gradients: n × batch image-model pairs.
- evaluate: forward passes without gradient (two layer outputs per image alive), and the
  saliency maps' input gradients on ``saliency_samples`` images per model.

bf16 autocast keeps bf16 copies of the saved activations and of the weights: counted at half.

Sizing to a card (the spec's ``execution.gpu_memory_gb``, :func:`size_to_card`): a job whose
peak would not fit gets ``execution.max_models``, the most submodels one computation may hold:
batched training steps its population in groups of that many (core.training.loop), batched
attacks and sanity checks craft with that many crafters per call (core.runtime,
core.attacks.batched).  Both are exact up to float rounding: each submodel's minibatch, data
order and seeds stay as planned.  Not split: a training minibatch (BatchNorm's batch
statistics would differ per part, so gradient accumulation would change the science), the
joint regimes' members (one loss couples them), an adaptive attack's batch (one unit already
runs every submodel, and its random start is drawn per unit: a job that crafts the adaptive
threat model keeps its n × batch peak) and evaluate's forward passes (no gradients kept).
"""

from __future__ import annotations

from dataclasses import dataclass

from clmrepro.kinds import regimes
from clmrepro.plan.storage import IN_CHANNELS, parameter_count

FLOAT32, INT64 = 4, 8
GiB = 2**30
# CUDA context, cuBLAS/cuDNN handles and the caching allocator's slack, held back from the card
CARD_RESERVE = 2 * GiB
CARDS = {"24 GB": 24 * 10**9, "80 GB": 80 * 10**9}


def _lenet5_saved(c: int) -> tuple[int, int]:
    """(bytes saved per image, largest single layer output per image in bytes)."""
    floats = (c * 32 * 32                      # conv1's input
              + 2 * 6 * 28 * 28                # conv1 out (bn1's input), relu out (pool's input)
              + 6 * 14 * 14                    # pool out = conv2's input
              + 2 * 16 * 10 * 10 + 16 * 5 * 5  # conv2 out, relu out, pool out
              + 2 * 120 + 84 + 10)             # conv3 out, relu out; fc1's relu out; log-softmax
    indices = 6 * 14 * 14 + 16 * 5 * 5          # max-pool indices (int64)
    return floats * FLOAT32 + indices * INT64, 6 * 28 * 28 * FLOAT32


def _resnet18_saved(c: int) -> tuple[int, int]:
    floats = c * 32 * 32 + 2 * 64 * 32 * 32     # the stem: its input, conv out, relu out
    for planes, side, downsample in ((64, 32, False), (128, 16, True), (256, 8, True),
                                     (512, 4, True)):
        size = planes * side * side
        # per block: conv1 out, relu, conv2 out, the block's relu; + the shortcut conv's out
        floats += 2 * 4 * size + (size if downsample else 0)
    floats += 512                               # Linear's input
    return floats * FLOAT32, 64 * 32 * 32 * FLOAT32


SAVED = {"lenet5": _lenet5_saved, "resnet18": _resnet18_saved}


def saved_per_image(architecture: str, in_channels: int) -> int:
    return SAVED[architecture](in_channels)[0]


def _optimizer_copies(training: dict) -> int:
    if training.get("optimizer") == "adam":
        return 2
    return 1 if training.get("momentum", 0) else 0


@dataclass(frozen=True)
class JobMemory:
    """A job's peak: ``fixed`` (weights, gradients, moments, data) + ``per_pair`` bytes for
    each of ``pairs`` image-model pairs run at once; ``models`` and ``images`` of those pairs
    are what micro-batching could cut."""

    fixed: int
    per_pair: int
    models: int                        # models whose images run at once
    images: int                        # images per model at once

    @property
    def peak(self) -> int:
        return self.fixed + self.per_pair * self.models * self.images


def _batched(execution: dict, linked: bool) -> bool:
    population = execution.get("population", "auto")
    return population in ("auto", "batched") and (not linked or execution.get("clm_schedule")
                                                  == "lockstep")


def job_memory(job: dict) -> JobMemory | None:
    """The GPU memory of one job file (None for a job without a model: data, report)."""
    params = job["params"]
    architecture = params.get("architecture")
    if architecture not in SAVED or job.get("stage") in ("data", "report"):
        return None
    c = IN_CHANNELS[params["dataset"]["name"]]
    weights = parameter_count(architecture, c) * FLOAT32
    per_image, largest = SAVED[architecture](c)
    execution = params.get("execution") or {}
    half = 0.5 if execution.get("precision") == "bf16" else 1.0
    n = int(params["population"]["size"])
    if "training" in params:
        training = params["training"]
        regime = params["population"]["regime"]
        data = (params["dataset"].get("n_train", 0) + params["dataset"].get("n_test", 0)) \
            * c * 32 * 32                          # the uint8 dataset moved to the device
        bf16_weights = n * weights // 2 if half < 1 else 0
        fixed = n * weights * (2 + _optimizer_copies(training)) + bf16_weights + data
        if params.get("diversity"):
            # the regime's own factor (its module in clmrepro.kinds.regimes)
            factor = regimes.get(regime).activation_factor(n)
            return JobMemory(fixed, int(per_image * factor * half), n, training["batch_size"])
        models = n if _batched(execution, params.get("linking") is not None) else 1
        return JobMemory(fixed, int(per_image * half), _capped(models, execution),
                         training["batch_size"])
    fixed = n * weights
    if job.get("stage") == "evaluate":
        saliency = JobMemory(fixed, int(per_image * half), n, params.get("saliency_samples", 0))
        forward = JobMemory(fixed, 2 * largest, n, params.get("batch_size", 100))
        return max(saliency, forward, key=lambda m: m.peak)
    # an adaptive chunk runs one batch through all n submodels whatever the cap
    models = n if _crafts_adaptive(params) else _capped(n, execution)
    return JobMemory(fixed, int(per_image * half), models, params.get("batch_size", 100))


def _crafts_adaptive(params: dict) -> bool:
    return "adaptive" in (params.get("threat_models") or ())


def _capped(models: int, execution: dict) -> int:
    """Models at once under the job's ``execution.max_models`` (set by :func:`size_to_card`)."""
    cap = execution.get("max_models")
    return models if cap is None else min(models, int(cap))


@dataclass(frozen=True)
class Fit:
    """What a job runs at once on a card: all of it, ``models`` of its n models at a time, or
    its batch in ``splits`` parts (which no job does: :meth:`describe` says it does not fit);
    ``fits`` False when even one image-model pair does not."""

    fits: bool
    models: int
    splits: int

    def describe(self, memory: JobMemory) -> str:
        if not self.fits:
            return "does not fit"
        if self.models == memory.models and self.splits == 1:
            return "fits"
        if self.splits == 1:
            return f"{self.models} of {memory.models} models at once"
        # no job splits a batch (BatchNorm; module docstring): the user lowers it
        return (f"does not fit: 1 model's batch of {memory.images} would need "
                f"{self.splits} parts; lower the batch")


def fit_on(memory: JobMemory, card_bytes: int) -> Fit:
    """Micro-batch the population first (fewer models at once keeps each model's batch, so its
    BatchNorm statistics, as planned), then the batch."""
    room = card_bytes - CARD_RESERVE - memory.fixed
    pair_bytes = memory.per_pair
    if room < pair_bytes:
        return Fit(False, 0, 0)
    if pair_bytes * memory.models * memory.images <= room:
        return Fit(True, memory.models, 1)
    models = room // (pair_bytes * memory.images)
    if models >= 1:
        return Fit(True, int(models), 1)
    per_part = room // pair_bytes
    return Fit(True, 1, -(-memory.images // int(per_part)))


def size_to_card(job: dict) -> dict:
    """The job with ``execution.max_models`` where its peak would not fit the spec's
    ``execution.gpu_memory_gb`` and fewer submodels at once would help (module docstring);
    the job unchanged when the knob is unset, when it fits, or when nothing can be cut
    exactly (the plan's GPU memory table then says "does not fit")."""
    params = job.get("params") or {}
    execution = params.get("execution") or {}
    card_gb = execution.get("gpu_memory_gb")
    if card_gb is None or not cuttable(job):
        return job
    memory = job_memory(job)
    if memory is None or memory.models <= 1:
        return job
    fit = fit_on(memory, int(card_gb * 10**9))
    if fit.fits and fit.models >= memory.models and fit.splits == 1:
        return job
    cap = max(fit.models, 1)
    return {**job, "params": {**params, "execution": {**execution, "max_models": cap}}}


def cuttable(job: dict) -> bool:
    """Jobs whose submodels may run in smaller groups with the same numbers: training of
    independent or lockstep submodels (not the joint regimes), attacks and sanity checks that
    craft no adaptive set (an adaptive chunk is one batch through every submodel)."""
    params = job.get("params") or {}
    if job.get("stage") in ("train", "retrain"):
        return "training" in params and not params.get("diversity")
    return job.get("stage") in ("attack", "sanity") and not _crafts_adaptive(params)
