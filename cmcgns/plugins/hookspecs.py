"""Hook specifications. Each hook is called once per plugin with a ``register`` callback:

    register(name, factory, *, options=None, description="")

``options`` is an optional pydantic model class validating the component's options from the
config; ``factory`` is called by cmcgns with the validated options plus kind-specific
keyword arguments (documented on each hook).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from cmcgns.data.preprocess.registry import Preprocessor
    from cmcgns.downstream.base import DownstreamTask
    from cmcgns.heads.base import ReconstructionHead
    from cmcgns.plugins.options import Options
    from cmcgns.samplers.base import NegativeSampler

PROJECT_NAME = "cmcgns"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Register(Protocol):
    """The callback every hook receives."""

    def __call__(
        self, name: str, factory: Any, *, options: type[Options] | None = None, description: str = ""
    ) -> None: ...


class SamplerFactory(Protocol):
    def __call__(self, options: Any, *, embed_dim: int) -> NegativeSampler: ...


class HeadFactory(Protocol):
    def __call__(
        self,
        options: Any,
        *,
        embed_dim: int,
        image_dim: int,
        patch_size: int,
        grid: int,
        image_size: int,
        in_chans: int,
    ) -> ReconstructionHead: ...


class TaskFactory(Protocol):
    def __call__(self, options: Any) -> DownstreamTask: ...


class DatasetFactory(Protocol):
    def __call__(self, options: Any) -> Preprocessor: ...


@hookspec
def register_negative_samplers(register: Register) -> None:
    """Register negative samplers.

    factory(options, *, embed_dim) -> cmcgns.samplers.base.NegativeSampler, whose
    forward(problem: ContrastiveProblem) -> SamplerOutput(loss, stats) (see cmcgns.samplers.base).
    """


@hookspec
def register_reconstruction_heads(register: Register) -> None:
    """Register masked-image reconstruction heads.

    factory(options, *, embed_dim, image_dim, patch_size, grid, image_size, in_chans)
        -> cmcgns.heads.base.ReconstructionHead, whose forward(inputs: ReconstructionInputs) -> loss.
    ``head: {name: none}`` in a config means no head (no reconstruction stage allowed).
    """


@hookspec
def register_downstream_tasks(register: Register) -> None:
    """Register downstream tasks (classification, detection, segmentation, ...).

    factory(options) -> cmcgns.downstream.base.DownstreamTask
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset preprocessors (raw download layout -> cmcgns manifests).

    factory(options) -> cmcgns.data.preprocess.base.Preprocessor
    """
