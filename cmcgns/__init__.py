"""cmcgns: cross-modal clustering-guided negative sampling for chest X-ray / report pretraining."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    """`cmcgns.load_model` without importing torch when only the version is asked for."""
    if name == "load_model":
        from cmcgns.joint.model import load_model

        return load_model
    raise AttributeError(f"module 'cmcgns' has no attribute {name!r}")
