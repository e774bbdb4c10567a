"""The one base class of every plugin's options: unknown keys are errors, never silently ignored."""

from __future__ import annotations

import pydantic


class Options(pydantic.BaseModel):
    """Derive a plugin's options from this; the registry refuses options models that accept unknown keys."""

    model_config = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)


class NoOptions(Options):
    """For components that take no options."""
