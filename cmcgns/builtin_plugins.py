"""Built-in components, registered through the very same hooks third-party plugins use."""

from __future__ import annotations

from cmcgns.plugins.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from cmcgns.data.preprocess.registry import register_builtin_datasets

    register_builtin_datasets(register)
