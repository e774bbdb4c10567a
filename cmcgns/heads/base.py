"""Reconstruction head interface and patch utilities."""

from __future__ import annotations

import torch
from torch import nn


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, N, patch*patch*C] in row-major patch order."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def random_patch_mask(batch: int, grid: int, ratio: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Boolean [B, grid*grid] with exactly round(ratio * N) masked patches per image."""
    n = grid * grid
    k = max(1, int(round(ratio * n)))
    noise = torch.rand(batch, n, generator=generator).to(device)
    ranks = noise.argsort(dim=1).argsort(dim=1)
    return ranks < k


def apply_patch_mask(images: torch.Tensor, mask: torch.Tensor, patch: int) -> torch.Tensor:
    b, _, h, w = images.shape
    grid = mask.view(b, 1, h // patch, w // patch).to(images.dtype)
    pixel_mask = grid.repeat_interleave(patch, dim=2).repeat_interleave(patch, dim=3)
    return images * (1 - pixel_mask)


class ReconstructionHead(nn.Module):
    """forward(masked_patches, text_tokens, text_mask, target_patches, patch_mask) -> loss."""

    enabled = True


class NoReconstruction(ReconstructionHead):
    enabled = False

    def forward(self, *args, **kwargs) -> torch.Tensor:  # pragma: no cover - never called
        raise RuntimeError("the 'none' reconstruction head does not reconstruct")
