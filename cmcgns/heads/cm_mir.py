"""CM-MIR: cross-modal masked image reconstruction. Features of the masked image's patches
query the report tokens (cross-attention); the text-attended features, fused with the patch
features, are decoded to the pixels of the masked patches (L1 or L2, optionally on
per-patch normalised targets)."""

from __future__ import annotations

from typing import Literal

import pydantic
import torch
from torch import nn

from cmcgns.heads.base import NoReconstruction, ReconstructionHead


class CMMIROptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    hidden_dim: int = pydantic.Field(256, ge=8)
    num_heads: int = pydantic.Field(4, ge=1)
    decoder_layers: int = pydantic.Field(1, ge=1)
    loss: Literal["l1", "l2"] = "l2"
    norm_pix: bool = True
    mask_ratio: float = pydantic.Field(0.5, gt=0.0, lt=1.0)


class CMMIRHead(ReconstructionHead):
    def __init__(self, options: CMMIROptions, image_dim: int, text_dim: int, patch_size: int, in_chans: int) -> None:
        super().__init__()
        if options.hidden_dim % options.num_heads:
            raise ValueError("cm-mir: hidden_dim must be divisible by num_heads")
        self.options = options
        self.mask_ratio = options.mask_ratio
        self.image_proj = nn.Linear(image_dim, options.hidden_dim)
        self.text_proj = nn.Linear(text_dim, options.hidden_dim)
        self.attn = nn.MultiheadAttention(options.hidden_dim, options.num_heads, batch_first=True)
        self.norm = nn.LayerNorm(options.hidden_dim)
        layers: list[nn.Module] = []
        for _ in range(options.decoder_layers):
            layers += [nn.Linear(options.hidden_dim, options.hidden_dim), nn.GELU()]
        self.decoder = nn.Sequential(*layers, nn.Linear(options.hidden_dim, patch_size * patch_size * in_chans))

    def forward(self, masked_patches: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor,
                target_patches: torch.Tensor, patch_mask: torch.Tensor) -> torch.Tensor:
        q = self.image_proj(masked_patches)
        kv = self.text_proj(text_tokens)
        attended, _ = self.attn(q, kv, kv, key_padding_mask=~text_mask)
        pred = self.decoder(self.norm(q + attended)).float()
        target = target_patches.float()
        if self.options.norm_pix:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        err = (pred - target).abs() if self.options.loss == "l1" else (pred - target) ** 2
        per_patch = err.mean(-1)
        weight = patch_mask.to(per_patch.dtype)
        return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)


def build(options: CMMIROptions, *, image_dim: int, text_dim: int, patch_size: int, in_chans: int) -> CMMIRHead:
    return CMMIRHead(options, image_dim, text_dim, patch_size, in_chans)


def build_none(options: pydantic.BaseModel, **_: int) -> NoReconstruction:
    return NoReconstruction()
