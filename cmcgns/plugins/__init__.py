"""Plugin system: pluggy hooks that receive a ``register`` callback (the ``llm``/``tox`` way).

Third-party packages expose a module under the ``cmcgns`` entry-point group and implement
any of the hooks in :mod:`cmcgns.plugins.hookspecs` with :data:`hookimpl`.
"""

from cmcgns.plugins.hookspecs import (
    DatasetFactory,
    HeadFactory,
    Register,
    SamplerFactory,
    TaskFactory,
    hookimpl,
    hookspec,
)
from cmcgns.plugins.options import NoOptions, Options
from cmcgns.plugins.registry import KINDS, Component, Registry

__all__ = [
    "hookimpl",
    "hookspec",
    "Options",
    "NoOptions",
    "Register",
    "SamplerFactory",
    "HeadFactory",
    "TaskFactory",
    "DatasetFactory",
    "Component",
    "Registry",
    "KINDS",
]
