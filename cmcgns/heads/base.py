"""Reconstruction head interface and masking utilities.

A head is built by ``factory(options, *, embed_dim, image_dim, patch_size, grid, image_size,
in_chans)`` and called in reconstruction stages with ``ReconstructionInputs``; it returns a scalar
loss. A head owns its masking (feature-level for ``cm-mir``, pixel-level for ``mae-pixel``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from cmcgns.models.features import Features


@dataclasses.dataclass
class ReconstructionInputs:
    images: torch.Tensor  # [B, C, H, W] the encoder's input: the reconstruction target
    features: Features  # the model's encoding of the unmasked batch
    generator: torch.Generator  # CPU generator for the masks (a function of seed, step and rank)
    encode_patches: Callable[[torch.Tensor], torch.Tensor]  # images -> raw local features [B, P, image_dim]


class ReconstructionHead(nn.Module):
    """``forward(inputs: ReconstructionInputs) -> loss``."""

    def forward(self, inputs: ReconstructionInputs) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, N, patch*patch*C] in row-major patch order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def to_device_async(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """CPU -> device without a host sync: masks are drawn on the host generator (identical on every device)
    and copied from pinned memory on CUDA (a pageable copy would block the host until the GPU catches up)."""
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def random_patch_mask(
    batch: int, patches: int, ratio: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Boolean [B, patches] with exactly round(ratio * patches) (at least 1) masked entries per row."""
    k = max(1, int(round(ratio * patches)))
    noise = to_device_async(torch.rand(batch, patches, generator=generator), device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks < k


def bernoulli_patch_mask(
    batch: int, patches: int, ratio: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """The official spatial dropout's mask: each entry masked independently with probability `ratio`."""
    return to_device_async(torch.rand(batch, patches, generator=generator) < ratio, device)


def grid_to_pixels(mask: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Patch mask [B, P] -> pixel mask [B, 1, H, W] (nearest)."""
    b = mask.shape[0]
    cells = mask.view(b, 1, *grid).to(torch.float32)
    return torch.nn.functional.interpolate(cells, size=size, mode="nearest")
