"""Read a trained population back: the models of ``population.pt`` ready for attack/evaluate.

Every way the file can be wrong (missing, empty, truncated, foreign bytes, a pickle that would
run code, another layout, weights that do not fit the architecture, NaN/Inf weights, another
architecture or size than the job wants) is an :class:`ArtifactError` naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from clmrepro.core.checkpoints import REBUILD, ArtifactError, load_population_states

if TYPE_CHECKING:  # torch is imported when a population is read: a bad job file is reported
    import torch   # without it (steps import this module at start)
    from torch import nn


def check_population_meta(path: str | Path, meta: dict, states: list[dict], *,
                          architecture: str | None = None, size: int | None = None,
                          job_id: str = "the job") -> None:
    """ArtifactError unless the file holds ``size`` submodels of ``architecture`` (None: any)."""
    from clmrepro.core.factory import is_python
    from clmrepro.core.models import ARCHITECTURES

    held = meta["architecture"]
    if held not in ARCHITECTURES and not is_python(str(held)):
        raise ArtifactError(f"{path}: unknown architecture {held!r} (allowed: "
                            f"{', '.join(sorted(ARCHITECTURES))}); {REBUILD}")
    if (architecture is not None and held != architecture) or (size is not None
                                                              and len(states) != int(size)):
        raise ArtifactError(
            f"{path}: holds {len(states)} × {held}, but {job_id} wants "
            f"{size if size is not None else len(states)} × {architecture or held} (a file of "
            f"another population or an older spec); {REBUILD}")


def check_finite(path: str | Path, states: list[dict]) -> None:
    """ArtifactError if any weight or buffer is NaN or infinite."""
    import torch

    for k, state in enumerate(states):
        for name, tensor in state.items():
            if torch.is_tensor(tensor) and tensor.is_floating_point() \
                    and not bool(torch.isfinite(tensor).all()):
                raise ArtifactError(
                    f"{path}: submodel {k} has NaN or infinite values in {name} (training "
                    f"diverged, e.g. a learning rate too high, or the file was altered); "
                    f"{REBUILD}")


def load_population(path: str | Path, device: torch.device | str = "cpu", *,
                    architecture: str | None = None,
                    size: int | None = None) -> tuple[dict, list[nn.Module]]:
    """(meta, models) with every submodel built from ``meta`` and in eval mode on ``device``.

    ``meta`` holds architecture, regime, size, in_channels, num_classes and dataset, as
    written by the train step.  ``architecture``/``size``, when given, must match the file."""
    from clmrepro.core.models import build_model

    meta, states = load_population_states(path)
    check_population_meta(path, meta, states, architecture=architecture, size=size)
    check_finite(path, states)
    models = []
    for k, state in enumerate(states):
        model = build_model(meta["architecture"], in_channels=int(meta["in_channels"]),
                            num_classes=int(meta["num_classes"]),
                            kwargs=meta.get("architecture_kwargs"))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(line.strip() for line in first[1:3]) or first[0]
            raise ArtifactError(f"{path}: submodel {k} does not fit a {meta['architecture']} "
                                f"with {meta['in_channels']} input channel(s) ({detail[:160]}); "
                                f"{REBUILD}") from exc
        models.append(model.to(device).eval())
    return meta, models


WEIGHTS_FIX = "check the file the spec's regime.weights names (docs/bring-your-own.md)"
MEMBER_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def _as_state(found, where: str) -> dict:
    """A member's state dict: a dict of tensors, or {"state_dict": {...}}."""
    import torch

    if isinstance(found, dict) and isinstance(found.get("state_dict"), dict):
        found = found["state_dict"]
    if not isinstance(found, dict) or not found or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in found.items()):
        kind = type(found).__name__ if not isinstance(found, dict) else "a dict of non-tensors"
        raise ArtifactError(f"{where}: not a state dict (got {kind}); {WEIGHTS_FIX}")
    return found


def external_states(path: str | Path) -> list[dict]:
    """The members' state dicts of your own weights (kinds.regimes.pretrained), read with
    ``weights_only``: a file holding a list of state dicts, {"states": [...]}, clmrepro's
    population.pt, or one state dict (one member); or a folder of one file per member."""
    from clmrepro.core.checkpoints import REBUILD, safe_load

    path = Path(path)

    def load(file: Path):
        try:
            return safe_load(file)
        except ArtifactError as error:
            raise ArtifactError(str(error).replace(REBUILD, WEIGHTS_FIX)) from None

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in MEMBER_SUFFIXES)
        if not files:
            raise ArtifactError(f"{path}: a folder without member files "
                                f"({', '.join(MEMBER_SUFFIXES)}); {WEIGHTS_FIX}")
        return [_as_state(load(f), str(f)) for f in files]
    if not path.exists():
        raise ArtifactError(f"{path}: file not found; {WEIGHTS_FIX}")
    blob = load(path)
    if isinstance(blob, dict) and isinstance(blob.get("states"), list):
        blob = blob["states"]
    if isinstance(blob, (list, tuple)):
        if not blob:
            raise ArtifactError(f"{path}: holds no member; {WEIGHTS_FIX}")
        return [_as_state(state, f"{path}: member {k}") for k, state in enumerate(blob)]
    return [_as_state(blob, str(path))]


def load_external_population(path: str | Path, device="cpu", *, architecture: str,
                             kwargs: dict | None, size: int, in_channels: int,
                             num_classes: int = 10) -> tuple[dict, list]:
    """(meta, models) of your own weights: ``size`` members that fit ``architecture``, with
    finite values; an ArtifactError naming the file for each way they do not."""
    from clmrepro.core.models import build_model

    states = external_states(path)
    if len(states) != size:
        raise ArtifactError(f"{path}: holds {len(states)} member(s), but the spec's population "
                            f"has size {size}; set size: {len(states)} or {WEIGHTS_FIX}")
    try:
        check_finite(path, states)
    except ArtifactError as error:
        from clmrepro.core.checkpoints import REBUILD
        raise ArtifactError(str(error).replace(REBUILD, WEIGHTS_FIX)) from None
    models = []
    for k, state in enumerate(states):
        model = build_model(architecture, in_channels=in_channels, num_classes=num_classes,
                            kwargs=kwargs)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            lines = [line.strip() for line in str(exc).strip().splitlines()[1:3]]
            raise ArtifactError(f"{path}: member {k} does not fit {architecture} "
                                f"({' '.join(lines)[:200]}); {WEIGHTS_FIX}") from None
        models.append(model.to(device).eval())
    meta = {"architecture": architecture, "architecture_kwargs": kwargs, "size": size,
            "in_channels": in_channels, "num_classes": num_classes, "regime": "pretrained"}
    return meta, models


def population_of(job: dict, device="cpu", name: str = "population") -> tuple[dict, list]:
    """The population a scoring job reads: trained by this spec (``load_population``) or your
    own weights (a population block with the compiled ``sha256``)."""
    from clmrepro.steps.inputs import CHANNELS

    params = job["params"]
    path = job["inputs"][name]
    if params["population"].get("sha256"):
        return load_external_population(
            path, device, architecture=params["architecture"],
            kwargs=params.get("architecture_kwargs"), size=int(params["population"]["size"]),
            in_channels=CHANNELS[params["dataset"]["name"]])
    return load_population(path, device)
