"""Installed versions of the packages a result depends on, for the records runs write."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """{distribution: version} for each of `names` that is installed (absent ones are left out)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out
