"""Installed versions of Python packages, as the data manifests and report provenance record
them (no torch import)."""

from __future__ import annotations

from importlib import metadata

NOT_INSTALLED = "not installed"


def installed_versions(packages: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``{package: version}``, ``"not installed"`` for a package that is not."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = NOT_INSTALLED
    return found
