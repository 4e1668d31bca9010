"""Your own trained population read from its weights (issue 28; kinds.regimes.pretrained).

A file holding a list of state dicts, ``{"states": [...]}``, clmrepro's population.pt, or one
state dict (one member); or a folder of one state-dict file per member, in name order.  Every
file is read with ``torch.load(weights_only=True)`` (core.checkpoints.safe_load): a pickle that
would run code is refused.  Each way the weights do not fit is an ArtifactError naming the file.
"""

from __future__ import annotations

from pathlib import Path

from clmrepro.core.checkpoints import REBUILD, ArtifactError, safe_load

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
    _check_finite(path, states)
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



def _check_finite(path: str | Path, states: list[dict]) -> None:
    import torch

    for k, state in enumerate(states):
        for name, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ArtifactError(f"{path}: member {k} has NaN or infinite values in {name}; "
                                    f"{WEIGHTS_FIX}")

