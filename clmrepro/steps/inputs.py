"""Check a job and its input files before any work starts, one clear line per problem.

``step_main`` calls :func:`read_job` (the file parsed into its stage's typed model,
``plan.jobs.parse_job``: an unknown, missing or mistyped key is refused) and
:func:`check_inputs` before the step's ``run``, so a
broken input stops the job in seconds, not after an hour of training, and the user reads one
line naming the file, what is wrong and what to do (STYLE.md rule 7), never a traceback.
The checks read big files memory-mapped: a population's tensors are not read at all here, an
adversarial set once, in chunks.

The same checks are functions the steps may call on data they hold already:
:func:`check_adversarial_set` (attack/evaluate, e.g. on a resumed chunk) and
``steps.population.load_population(path, architecture=..., size=...)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clmrepro.core.checkpoints import REBUILD, ArtifactError
from clmrepro.fields import DATASET_CHANNELS
from clmrepro.plan.jobs import AnyJob, JobError, parse_job
from clmrepro.plan.samples import images_per_threat

Job = dict[str, Any]  # a job file's content as a dict (AnyJob.as_dict()), what the steps read

COMPILE = "regenerate it with `clmrepro compile SPEC` (job files are written by the compiler)"
# the inputs each stage reads (the typed model checks the keys of params, not which inputs)
STAGE_INPUTS = {"retrain": ("init",), "attack": ("population",), "evaluate": ("population",),
                "sanity": ("population",), "report": ("paper_tables",)}
POPULATION_INPUTS = ("population", "init")
# Input channels of each dataset's images (all 32×32 after loading, core.data).
CHANNELS = DATASET_CHANNELS
PIXEL_ATOL = 1e-6  # as core.attacks.check_perturbation


class JobFileError(ArtifactError):
    """The job file itself is unreadable or incomplete."""


def read_job(path: str | Path) -> AnyJob:
    """The typed job of a job file (plan.jobs); JobFileError (one line naming the file and
    the key) if it is missing, not JSON, not a job of its stage (an unknown, missing or
    mistyped key) or lacks an input the step reads."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JobFileError(f"{path}: job file not found; {COMPILE}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise JobFileError(f"{path}: cannot read the job file ({error}); {COMPILE}") from None
    try:
        job = json.loads(text)
    except json.JSONDecodeError as error:
        raise JobFileError(f"{path}:{error.lineno}: job file is not valid JSON ({error.msg}, "
                           f"column {error.colno}); {COMPILE}") from None
    try:
        typed = parse_job(job, str(path))
    except JobError as error:
        raise JobFileError(f"{error}; {COMPILE}") from None
    missing = [f"inputs.{key}" for key in STAGE_INPUTS.get(typed.stage, ())
               if key not in typed.inputs]
    if missing:
        raise JobFileError(f"{path}: {typed.stage} job lacks {', '.join(missing)}; {COMPILE}")
    return typed


def _paths(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def check_inputs(job: Job) -> None:
    """ArtifactError for the first broken input of ``job``: missing or empty files, JSON that
    does not parse, a population that is not the job's architecture or size, an adversarial
    set that is not the job's attack, shape or eps-ball."""
    from clmrepro.steps.verified import check_recorded

    params = job["params"]
    for name, value in job["inputs"].items():
        for path in _paths(value):
            _check_exists(Path(path))
            if path.endswith(".json"):
                _check_json(Path(path))
            elif name in POPULATION_INPUTS:
                check_population_file(path, job)
            elif name == "adversarial" and params.get("attack") is not None:
                check_adversarial_file(path, job)
    check_recorded(job)  # every input's bytes against the sha256 recorded when it was written


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise ArtifactError(f"{path}: file not found; run the job that writes it first "
                            f"(snakemake does this)")
    if path.is_file() and path.stat().st_size == 0:
        raise ArtifactError(f"{path}: file is empty (0 bytes); {REBUILD}")


def _check_json(path: Path) -> None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}:{error.lineno}: not valid JSON (truncated or altered: "
                            f"{error.msg}, column {error.colno}); {REBUILD}") from None
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: not valid JSON (not UTF-8 text); {REBUILD}") from None


def check_population_file(path: str | Path, job: Job) -> None:
    """The population file has the layout, architecture and size ``job`` asks for (the
    tensors are mapped, not read; NaN/Inf and fit are checked when the step loads them)."""
    from clmrepro.core.checkpoints import load_population_states
    from clmrepro.steps.population import check_population_meta, population_of

    params = job["params"]
    if params["population"].get("sha256"):  # your own weights: read, fitted, checked in full
        population_of(job)
        return
    meta, states = load_population_states(path, mmap=True)
    size = params["population"].get("size")
    check_population_meta(path, meta, states, architecture=params.get("architecture"),
                          size=None if size is None else int(size), job_id=f"job {job['id']}")


def check_adversarial_file(path: str | Path, job: Job) -> None:
    """:func:`check_adversarial_set` on a file (memory-mapped)."""
    from clmrepro.core.checkpoints import safe_load

    check_adversarial_set(safe_load(path, mmap=True), job, path)


def _same_attack(saved: Any, attack: dict) -> bool:
    """As the evaluate step compares them: kind, eps (as a float) and every parameter."""
    if not isinstance(saved, dict):
        return False
    try:
        eps = float(saved.get("eps"))
    except (TypeError, ValueError):
        return False
    return (saved.get("kind"), eps, saved.get("params")) == (
        attack["kind"], float(attack["eps"]), attack["params"])


def _describe(attack: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted((attack.get("params") or {}).items()))
    eps = attack.get("eps")
    return f"{attack.get('kind')} eps={eps:.6g} ({params})" if isinstance(eps, (int, float)) \
        else f"{attack.get('kind')} eps={eps!r} ({params})"


def check_adversarial_set(blob: Any, job: Job, path: str | Path) -> None:
    """ArtifactError unless ``blob`` (an adversarial file's content) was crafted with the
    job's attack, holds every threat model the job scores, has the job's image shape and
    sample count, and every adversarial image is finite, in [0, 1] and within eps of its
    clean image.  Call it wherever a step takes adversarial images it did not just craft."""
    import torch

    params, attack = job["params"], job["params"]["attack"]
    fix = "delete it and rerun its attack job (snakemake reruns missing outputs)"
    if not isinstance(blob, dict) or not {"x", "y", "attack"} <= set(blob):
        got = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise ArtifactError(f"{path}: not an adversarial set (expected keys x, y, attack and "
                            f"one per threat model, got {got}); {fix}")
    saved = blob["attack"]
    if not _same_attack(saved, attack):
        shown = _describe(saved) if isinstance(saved, dict) else repr(saved)[:80]
        raise ArtifactError(f"{path}: crafted with {shown}, but job {job['id']} asks for "
                            f"{_describe(attack)}; {fix}")
    x, y = blob["x"], blob["y"]
    channels = CHANNELS.get(str(params["dataset"].get("name")))
    if not (torch.is_tensor(x) and torch.is_tensor(y) and x.dim() == 4 and y.dim() == 1
            and len(x) == len(y) and (channels is None or tuple(x.shape[1:]) == (channels, 32, 32))):
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        want = f"N×{channels}×32×32" if channels else "N×C×32×32"
        raise ArtifactError(f"{path}: clean images of shape {shape} with "
                            f"{len(y) if torch.is_tensor(y) else '?'} labels, but the job's "
                            f"dataset {params['dataset'].get('name')} gives {want} images with "
                            f"N labels; {fix}")
    wanted = params.get("n_samples")
    if wanted is not None and len(x) > int(wanted):
        raise ArtifactError(f"{path}: holds {len(x)} images, but job {job['id']} scores "
                            f"n_samples = {wanted}; {fix}")
    sizes = images_per_threat(params)
    n_models = int(params["population"].get("size") or 0)
    eps = float(attack["eps"])
    for threat in params.get("threat_models") or ():
        entry = blob.get(threat)
        if not isinstance(entry, dict) or not torch.is_tensor(entry.get("x_adv")):
            raise ArtifactError(f"{path}: lacks the {threat!r} set that job {job['id']} scores; "
                                f"{fix}")
        x_adv = entry["x_adv"]
        sets = list(x_adv) if threat == "transfer" else [x_adv]
        if threat == "transfer" and (x_adv.dim() != 5 or (n_models and len(x_adv) != n_models)):
            raise ArtifactError(f"{path}: transfer set of shape {tuple(x_adv.shape)}, but the "
                                f"population has {n_models} submodels (expected "
                                f"{n_models}×N×C×32×32); {fix}")
        n_expected = len(x) if sizes.get(threat) is None else min(sizes[threat], len(x))
        for crafter, images in enumerate(sets):
            if tuple(images.shape) != (n_expected, *x.shape[1:]):
                raise ArtifactError(f"{path}: {threat} set of shape {tuple(images.shape)}, "
                                    f"but the clean images give {(n_expected, *x.shape[1:])}; "
                                    f"{fix}")
            problem = _outside_ball(x[:n_expected], images, eps)
            if problem:
                by = f" (crafted by submodel {crafter})" if threat == "transfer" else ""
                raise ArtifactError(f"{path}: {threat} set{by} {problem} (eps = {eps:.6g}); "
                                    f"{fix}")


def _outside_ball(x, x_adv, eps: float, chunk: int = 1024) -> str | None:
    """Why ``x_adv`` is not a valid L∞ perturbation of ``x`` within ``eps``, or None."""
    import torch

    for start in range(0, len(x), chunk):
        clean = x[start:start + chunk].double()
        adv = x_adv[start:start + chunk].double()
        if not bool(torch.isfinite(adv).all()):
            return "holds NaN or infinite values"
        if adv.numel() == 0:
            continue
        distance = (adv - clean).abs().max().item()
        if distance > eps + PIXEL_ATOL:
            return f"leaves the eps-ball: max |x_adv - x| = {distance:.6g}"
        low, high = adv.min().item(), adv.max().item()
        if low < -PIXEL_ATOL or high > 1 + PIXEL_ATOL:
            return f"leaves the pixel range [0, 1]: values span [{low:.6g}, {high:.6g}]"
    return None
