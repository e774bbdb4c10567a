"""``mae-pixel``: the earlier pixel-masking head, kept for ablation. Input patches are masked in pixel
space (exact ratio), the masked image goes through the image encoder a second time, its patch
features query the report's sentence features (cross-attention), and a per-patch MLP predicts the
masked patches' pixels (L2 or L1, optionally on per-patch normalised targets, MAE convention).
Costs a second encoder forward and backward per step."""

from __future__ import annotations

from typing import Literal

import pydantic
import torch
from torch import nn

from cmcgns.heads.base import ReconstructionHead, ReconstructionInputs, grid_to_pixels, patchify, random_patch_mask
from cmcgns.plugins import Options, Register, hookimpl


class MAEPixelOptions(Options):
    hidden_dim: int = pydantic.Field(256, ge=8)
    num_heads: int = pydantic.Field(4, ge=1)
    decoder_layers: int = pydantic.Field(1, ge=1)
    loss: Literal["l1", "l2"] = "l2"
    norm_pix: bool = True
    mask_ratio: float = pydantic.Field(0.5, gt=0.0, lt=1.0)

    @pydantic.model_validator(mode="after")
    def _heads(self) -> MAEPixelOptions:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must be divisible by num_heads ({self.num_heads})")
        return self


class MAEPixelHead(ReconstructionHead):
    def __init__(
        self, options: MAEPixelOptions, embed_dim: int, image_dim: int, patch_size: int, grid: int, in_chans: int
    ) -> None:
        super().__init__()
        self.options = options
        self.patch_size = patch_size
        self.grid = grid
        self.image_proj = nn.Linear(image_dim, options.hidden_dim)
        self.text_proj = nn.Linear(embed_dim, options.hidden_dim)
        self.attn = nn.MultiheadAttention(options.hidden_dim, options.num_heads, batch_first=True)
        self.norm = nn.LayerNorm(options.hidden_dim)
        layers: list[nn.Module] = []
        for _ in range(options.decoder_layers):
            layers += [nn.Linear(options.hidden_dim, options.hidden_dim), nn.GELU()]
        self.decoder = nn.Sequential(*layers, nn.Linear(options.hidden_dim, patch_size * patch_size * in_chans))

    def forward(self, inputs: ReconstructionInputs) -> torch.Tensor:
        images, feats = inputs.images, inputs.features
        b = images.shape[0]
        mask = random_patch_mask(b, self.grid * self.grid, self.options.mask_ratio, inputs.generator, images.device)
        pixel_mask = grid_to_pixels(mask, (self.grid, self.grid), images.shape[-2:]).to(images.dtype)
        masked_patches = inputs.encode_patches(images * (1 - pixel_mask))
        q = self.image_proj(masked_patches)
        kv = self.text_proj(feats.sentences)
        padding = ~feats.sentence_mask & feats.sentence_mask.any(
            1, keepdim=True
        )  # a report without sentences attends to all
        attended, _ = self.attn(q, kv, kv, key_padding_mask=padding, need_weights=False)
        pred = self.decoder(self.norm(q + attended)).float()
        target = patchify(images, self.patch_size).float()
        if self.options.norm_pix:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        err = (pred - target).abs() if self.options.loss == "l1" else (pred - target) ** 2
        per_patch = err.mean(-1)
        weight = mask.to(per_patch.dtype)
        return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)


def build(
    options: MAEPixelOptions,
    *,
    embed_dim: int,
    image_dim: int,
    patch_size: int,
    grid: int,
    image_size: int,  # noqa: ARG001 (interface)
    in_chans: int,
) -> MAEPixelHead:
    return MAEPixelHead(options, embed_dim, image_dim, patch_size, grid, in_chans)


@hookimpl
def register_reconstruction_heads(register: Register) -> None:
    register(
        "mae-pixel",
        build,
        options=MAEPixelOptions,
        description="pixel masking + second encoder pass, per-patch MLP decoder on masked patches (ablation)",
    )
