"""A researcher's own architecture: a factory named by its import path (issue 28, item 1).

A spec may name ``architecture: {kind: python, factory: "examples.mlp.model:build", kwargs:
{...}}``.  The factory is called as ``factory(**kwargs)`` and returns an ``nn.Module`` that
takes images in [0, 1] of shape (N, C, 32, 32) (any normalisation inside the model, as
RobustBench does) and returns (N, classes) logits.  Inside the jobs the architecture is the
string ``python:<module>:<function>`` (records, reports and population files carry it) and its
kwargs travel beside it (``architecture_kwargs``).

The module is imported with the working directory (the repository the spec lives in) on
``sys.path``, so a factory under the repository needs no installation.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

PREFIX = "python:"


class FactoryError(ValueError):
    """The factory cannot be imported, called, or returns an unfit model (one line)."""


def is_python(architecture: str) -> bool:
    return architecture.startswith(PREFIX)


def name_of(factory: str) -> str:
    """The architecture's name in jobs and records: ``python:pkg.module:function``."""
    return PREFIX + factory


def _split(factory: str) -> tuple[str, str]:
    module, sep, function = factory.partition(":")
    if not sep or not module or not function or not function.isidentifier() or not all(
            part.isidentifier() for part in module.split(".")):
        raise FactoryError(f"factory {factory!r} is not an import path 'package.module:function'")
    return module, function


def _importable_from_here() -> None:
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)


def source_file(factory: str) -> str | None:
    """The factory module's file, relative to the working directory when under it (the DAG's
    and dvc.yaml's dependency); None when it cannot be found."""
    module, _ = _split(factory)
    _importable_from_here()
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return None
    origin = Path(spec.origin).resolve()
    try:
        return origin.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(origin)


def load_factory(factory: str) -> Callable:
    module_name, function = _split(factory)
    _importable_from_here()
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure is the user's to fix
        raise FactoryError(f"factory {factory!r}: cannot import {module_name!r} "
                           f"({type(error).__name__}: {error})") from None
    built = getattr(module, function, None)
    if not callable(built):
        raise FactoryError(f"factory {factory!r}: module {module_name!r} has no function "
                           f"{function!r}")
    return built


def build(architecture: str, kwargs: dict | None = None):
    """The model ``python:<factory>`` builds with ``kwargs``."""
    from torch import nn

    factory = architecture[len(PREFIX):]
    function = load_factory(factory)
    try:
        model = function(**(kwargs or {}))
    except Exception as error:  # noqa: BLE001
        raise FactoryError(f"factory {factory!r} failed to build with kwargs {kwargs or {}} "
                           f"({type(error).__name__}: {error})") from None
    if not isinstance(model, nn.Module):
        raise FactoryError(f"factory {factory!r} returned a {type(model).__name__}, not an "
                           "nn.Module")
    return model


def check_fit(architecture: str, kwargs: dict | None, *, in_channels: int,
              num_classes: int) -> list[str]:
    """What is wrong with the factory for a dataset of ``in_channels``×32×32 images and
    ``num_classes`` classes, one line per problem (empty when it fits)."""
    import torch

    try:
        model = build(architecture, kwargs)
    except FactoryError as error:
        return [str(error)]
    factory = architecture[len(PREFIX):]
    problems = []
    try:
        with torch.no_grad():
            out = model.eval()(torch.rand(2, in_channels, 32, 32,
                                          generator=torch.Generator().manual_seed(0)))
    except Exception as error:  # noqa: BLE001
        return [f"factory {factory!r}: its model does not accept the dataset's images "
                f"(2×{in_channels}×32×32 in [0, 1]): {type(error).__name__}: "
                f"{str(error).splitlines()[0][:160]}"]
    if not torch.is_tensor(out) or out.dim() != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        problems.append(f"factory {factory!r}: its model returns {shape} for 2 images; expected "
                        f"(2, {num_classes}) logits")
    elif out.shape[1] != num_classes:
        problems.append(f"factory {factory!r}: its model returns {out.shape[1]} classes; the "
                        f"dataset has {num_classes}")
    if not any(p.requires_grad for p in model.parameters()):
        problems.append(f"factory {factory!r}: its model has no trainable parameter")
    return problems
