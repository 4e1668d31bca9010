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


def population_of(job: dict, device="cpu", name: str = "population") -> tuple[dict, list]:
    """The population a scoring job reads: trained by this spec (``load_population``) or your
    own weights (a population block with the compiled ``sha256``)."""
    from clmrepro.core.external import load_external_population
    from clmrepro.plan.architectures import CHANNELS

    params = job["params"]
    path = job["inputs"][name]
    if params["population"].get("sha256"):
        return load_external_population(
            path, device, architecture=params["architecture"],
            kwargs=params.get("architecture_kwargs"), size=int(params["population"]["size"]),
            in_channels=CHANNELS[params["dataset"]["name"]])
    return load_population(path, device)
