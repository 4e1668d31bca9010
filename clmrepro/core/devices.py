"""One code path for CPU and CUDA: the job asks, this answers."""

from __future__ import annotations

import torch


def resolve_device(requested: str = "auto") -> torch.device:
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda (got {requested!r})")
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise RuntimeError("the spec asks for device 'cuda' but no CUDA device is visible")
    return torch.device("cpu")
