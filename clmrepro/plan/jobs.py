"""The job file as typed models, one per stage (docs/architecture.md, "Job file").

``plan.compile`` builds these; the emitters write :meth:`JobBase.as_dict` (the very bytes the
dict of earlier versions gave: the same keys, in the same order, None kept where the file has
a null and left out where the file has no key); a step reads its file back through
:func:`parse_job`, which refuses a hand-edited file with an unknown, missing or mistyped key
in one line naming the file and the key.

Blocks whose schema belongs to a kind module stay ``dict``: an attack's ``params``
(clmrepro.kinds.attacks), a regime's ``linking``, ``adversarial`` and ``diversity`` blocks
(clmrepro.kinds.regimes), the checks' ``sanity`` block (clmrepro.kinds.checks).  The values
of enumerations (dataset names, regimes, execution modes) are checked where the spec is
validated (clmrepro.spec); here they are strings.

Torch-free; pydantic only.  Numbers keep their JSON spelling (an ``int`` stays ``0``, a float
``0.0``), so a file parsed and dumped again is byte-identical.
"""

from __future__ import annotations

import json

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError

def _number(value: object) -> int | float:
    """A JSON number as written: an int stays an int, a float a float; never a bool."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be a number")
    return value


Number = Annotated[Union[int, float], PlainValidator(_number)]
Paths = Union[str, list[str]]
_ABSENT_IF_NONE = {"default": None, "exclude_if": lambda value: value is None}


class _Block(BaseModel):
    # strict: a string is never read as a number, nor a number as a string
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# ---- params blocks (plan.defaults writes them) -------------------------------------------

class PreparedDataset(_Block):
    """A data job's dataset: which one, fetched where."""

    name: str
    root: str


class Dataset(_Block):
    """plan.defaults.dataset_block: the split every job of an experiment reads."""

    name: str
    root: str
    split_seed: int
    n_train: int | None
    n_test: int | None


class PopulationBlock(_Block):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    id: str
    regime: str
    size: int
    from_: str | None = Field(alias="from")
    # a researcher's own weights (regime pretrained): the sha256 the compiler read, which the
    # jobs check the file against (steps.verified); absent for trained populations
    sha256: str | None = Field(**_ABSENT_IF_NONE)


class Execution(_Block):
    """The experiment's ``execution:`` block, every key present (plan.defaults.execution_block)."""

    population: str
    memory_format: str
    precision: str
    clm_schedule: str
    # the card the spec sized jobs to, and the cap plan.memory.size_to_card set (issue 30);
    # absent when unset, so job files stay as they were
    gpu_memory_gb: Number | None = Field(**_ABSENT_IF_NONE)
    max_models: int | None = Field(**_ABSENT_IF_NONE)


class Training(_Block):
    """plan.defaults.training_block: every knob resolved."""

    epochs: int
    batch_size: int
    optimizer: str
    lr: Number
    momentum: Number
    weight_decay: Number
    schedule: str
    t_max: int
    augment: bool
    eval_batch_size: int


class AttackBlock(_Block):
    """One attack at one budget; ``params`` are its kind's (clmrepro.kinds.attacks)."""

    id: str
    kind: str
    eps: Number
    params: dict[str, Any]


class ReportAttack(_Block):
    """An attack of the report's list: the experiment it ran in and its attack block."""

    experiment: str
    id: str
    kind: str
    eps: Number
    params: dict[str, Any]


# ---- params per stage ----------------------------------------------------------------------

class DataParams(_Block):
    dataset: PreparedDataset


class TrainParams(_Block):
    """train and retrain."""

    dataset: Dataset
    architecture: str
    # a researcher's factory's kwargs (core.factory); absent for the paper's architectures
    architecture_kwargs: dict[str, Any] | None = Field(**_ABSENT_IF_NONE)
    population: PopulationBlock
    training: Training
    linking: dict[str, Any] | None            # clmrepro.kinds.regimes
    adversarial: dict[str, Any] | None        # clmrepro.kinds.regimes
    execution: Execution
    replicate: int
    # the baselines' joint-training loss; absent (not null) for the paper's regimes
    diversity: dict[str, Any] | None = Field(**_ABSENT_IF_NONE)


class ScoringParams(_Block):
    """What every job that scores a population holds (evaluate, attack, sanity)."""

    dataset: Dataset
    architecture: str
    architecture_kwargs: dict[str, Any] | None = Field(**_ABSENT_IF_NONE)
    execution: Execution
    replicate: int
    population: PopulationBlock
    threat_models: list[str]
    crafting: str
    n_samples: int
    batch_size: int


class EvaluateParams(ScoringParams):
    attack: AttackBlock | None                # null: the benign record
    # the benign job's saliency images (the compiler always writes it); a hand-made
    # re-scoring job (an attack job's params, stage evaluate) has none and keeps its subsets
    saliency_samples: int | None = Field(**_ABSENT_IF_NONE)
    samples: dict[str, int] | None = Field(**_ABSENT_IF_NONE)
    # the deterministic inference rules (core.ensemble); absent unless the spec asks for them
    inference: list[str] | None = Field(**_ABSENT_IF_NONE)


class AttackParams(ScoringParams):
    attack: AttackBlock
    samples: dict[str, int]                   # threat model -> its first N test images
    inference: list[str] | None = Field(**_ABSENT_IF_NONE)


class SanityParams(ScoringParams):
    sanity: dict[str, Any]                    # plan.defaults.sanity_block, clmrepro.kinds.checks


class ReportParams(_Block):
    spec_path: str
    spec_name: str
    description: str
    departures: list[str]
    precision_notes: list[str]
    spec_sha256: str
    seed: int
    device: str
    attacks: list[ReportAttack]
    attack_params: dict[str, dict[str, Any]]
    sweeps: list[dict[str, Any]]


# ---- the jobs -------------------------------------------------------------------------------

class JobBase(_Block):
    """What every job file holds besides its stage's params."""

    id: str
    stage: str
    spec: str
    experiment: str
    seed: int
    threads: int
    device: str
    gpu: bool
    inputs: dict[str, Paths]
    outputs: dict[str, str]

    def as_dict(self) -> dict:
        """The job file's content: the keys and values the compiler has always written, in
        the order it builds them (dvc.yaml lists the knobs in that order)."""
        return self.model_dump(mode="json", by_alias=True)

    def as_read(self) -> dict:
        """The job as a step reads it from its file: every mapping's keys sorted as the file
        (written with sort_keys) has them.  A step that saves a block of its job (the attack
        block in adversarial.pt) writes the same bytes whichever way it got the job."""
        return json.loads(json.dumps(self.as_dict(), sort_keys=True))


class DataJob(JobBase):
    stage: Literal["data"]
    seed: int | None = Field(**_ABSENT_IF_NONE)   # a data job draws nothing
    params: DataParams


class TrainJob(JobBase):
    stage: Literal["train", "retrain"]
    params: TrainParams


class EvaluateJob(JobBase):
    stage: Literal["evaluate"]
    params: EvaluateParams


class AttackJob(JobBase):
    stage: Literal["attack"]
    params: AttackParams


class SanityJob(JobBase):
    stage: Literal["sanity"]
    params: SanityParams


class ReportJob(JobBase):
    stage: Literal["report"]
    params: ReportParams


# the model of each stage's job file (plan.compile builds them by stage)
JOB_MODELS = {"data": DataJob, "train": TrainJob, "retrain": TrainJob, "attack": AttackJob,
              "evaluate": EvaluateJob, "sanity": SanityJob, "report": ReportJob}
STAGES = tuple(JOB_MODELS)
AnyJob = Union[DataJob, TrainJob, EvaluateJob, AttackJob, SanityJob, ReportJob]
Job = Annotated[AnyJob, Field(discriminator="stage")]
_JOB = TypeAdapter(Job)


class JobError(ValueError):
    """A job file that is not a job of its stage (one line: file, key, what was given)."""


def parse_job(data: object, source: str = "job") -> AnyJob:
    """The typed job of ``data`` (a job file's JSON); :class:`JobError` naming ``source``
    (the file) and the first wrong key otherwise."""
    if not isinstance(data, dict):
        raise JobError(f"{source}: job file must hold a JSON object (got {type(data).__name__})")
    stage = data.get("stage")
    if "stage" not in data:
        raise JobError(f"{source}: key 'stage' is missing")
    if stage not in STAGES:
        raise JobError(f"{source}: key 'stage' is {stage!r}; allowed: {', '.join(STAGES)}")
    try:
        return _JOB.validate_python(data)
    except ValidationError as error:
        raise JobError(_one_line(source, data, error)) from None


def _one_line(source: str, data: dict, error: ValidationError) -> str:
    problems = error.errors(include_url=False)
    keys = list(dict.fromkeys(_key(data, problem) for problem in problems))
    first, loc = problems[0], _key(data, problems[0])
    key = ".".join(str(part) for part in loc) or "(top level)"
    # a union reports each of its branches: count the keys, not the errors
    more = f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""
    if first["type"] == "missing":
        return f"{source}: key '{key}' is missing{more}"
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{key}' (given {_shown(first['input'])}){more}"
    why = first["msg"].removeprefix("Value error, ").removeprefix("Input ")
    return f"{source}: key '{key}' {why} (given {_shown(_at(data, loc))}){more}"


def _key(data: dict, problem: dict) -> tuple:
    """The key a problem is about: its location without the stage's tag and, but for a
    missing key, without a union's branch names (int, float, str, ...)."""
    loc = list(problem["loc"])
    if loc and loc[0] == data.get("stage"):  # the discriminator's tag
        loc = loc[1:]
    return tuple(loc if problem["type"] == "missing" else _present(data, loc))


def _at(data: Any, loc: tuple) -> Any:
    for part in loc:
        data = data[part]
    return data


def _present(data: Any, loc: list) -> list:
    """The longest prefix of ``loc`` that names something in ``data``."""
    found = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            break
        found.append(part)
    return found


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
