"""Reading weight files as data from outside: a damaged or hand-made safetensors file, or tensors of
the wrong kind, give one line naming the file and the tensor, never a traceback."""

from __future__ import annotations

from pathlib import Path

import torch

from cmcgns.errors import CmcgnsError, DataError


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file; a truncated file or an absurd header is one DataError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(f"{path}: not a readable safetensors file ({reason}); export or download it again") from None


def check_tensors(
    state: dict[str, torch.Tensor],
    expected: dict[str, torch.Tensor],
    source: str,
    error: type[CmcgnsError] = DataError,
) -> None:
    """Every tensor of `state` that the model has must fit it: same shape, and floating point where
    the model's is (an int64 or bool weight would be cast silently into nonsense). Lower-precision
    floats (float16, bfloat16) are accepted: loading widens them."""
    for key, value in state.items():
        target = expected.get(key)
        if target is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise error(f"{source}: {key} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != tuple(target.shape):
            raise error(f"{source}: {key} has shape {tuple(value.shape)}, the model expects {tuple(target.shape)}")
        if target.is_floating_point() != value.is_floating_point():
            raise error(f"{source}: {key} is {value.dtype}, the model expects {target.dtype}")
