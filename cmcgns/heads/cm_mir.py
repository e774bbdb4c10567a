"""CM-MIR: cross-modal masked image reconstruction at the feature level (paper Fig. 1, stage II;
official ``image_decoder.py``; ``shared/spec/method.md`` section 2.7).

The local image features f^I are masked (a fixed count of random cells, ratio 0.5 by default, replaced
by a learned mask embedding; or the official Bernoulli spatial dropout with 1/(1-p) rescaling), fused
with the text-to-image features f^{R->I} of the unmasked pass by cross-attention, decoded by a
transformer decoder of ``decoder_layers`` *distinct* layers (the official code repeats one shared
layer) attending to f^{R->I}, and a conv + bilinear upsampler to the full input image. The loss is
``scale`` x L1 over the whole image (official x10) or over the masked cells only. No second image
encoder pass; the output is unbounded (the official Tanh cannot reach targets below mid-grey).
"""

from __future__ import annotations

import math
from typing import Literal

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from cmcgns.heads.base import (
    ReconstructionHead,
    ReconstructionInputs,
    bernoulli_patch_mask,
    grid_to_pixels,
    random_patch_mask,
)
from cmcgns.models.pooling import divisible_heads
from cmcgns.plugins import Options, Register, hookimpl


class CMMIROptions(Options):
    mask_ratio: float = pydantic.Field(0.5, gt=0.0, lt=1.0)
    masking: Literal["fixed", "bernoulli"] = pydantic.Field(
        "fixed", description="fixed count of random cells, or official spatial dropout"
    )
    num_heads: int = pydantic.Field(8, ge=1)
    decoder_layers: int = pydantic.Field(
        6, ge=1, description="distinct transformer decoder layers (official 6, shared)"
    )
    ffn_dim: int = pydantic.Field(2048, ge=8)
    upsampler_channels: int = pydantic.Field(
        256, ge=8, description="channels of the first upsampling conv (halved per x2, min 32)"
    )
    loss: Literal["l1", "l2"] = "l1"
    loss_scope: Literal["image", "masked"] = pydantic.Field(
        "image", description="whole image (official) or masked cells only"
    )
    scale: float = pydantic.Field(10.0, gt=0.0, description="loss multiplier (official 10)")


class ConvUpsampler(nn.Module):
    """[B, D, g, g] -> [B, in_chans, H, W]: conv1x1, then (x2 bilinear, conv3x3, GELU) per octave."""

    def __init__(self, dim: int, channels: int, grid: int, image_size: int, in_chans: int) -> None:
        super().__init__()
        self.image_size = image_size
        octaves = max(0, math.ceil(math.log2(image_size / grid)))
        layers: list[nn.Module] = [nn.Conv2d(dim, channels, 1), nn.GELU()]
        ch = channels
        for _ in range(octaves):
            nxt = max(32, ch // 2)
            layers += [
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(ch, nxt, 3, padding=1),
                nn.GELU(),
            ]
            ch = nxt
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(ch, in_chans, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.body(x)
        if x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return self.out(x)


class CMMIRHead(ReconstructionHead):
    def __init__(self, options: CMMIROptions, embed_dim: int, grid: int, image_size: int, in_chans: int) -> None:
        super().__init__()
        self.options = options
        self.grid = grid
        heads = divisible_heads(embed_dim, options.num_heads)
        self.mask_token = nn.Parameter(torch.zeros(embed_dim))
        self.position = nn.Parameter(torch.randn(grid * grid, embed_dim) * 0.02)
        self.fuse = nn.MultiheadAttention(embed_dim, heads, batch_first=True)
        self.fuse_norm = nn.LayerNorm(embed_dim)
        layer = nn.TransformerDecoderLayer(
            embed_dim, heads, options.ffn_dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, options.decoder_layers)  # deep copies: distinct layers
        self.upsampler = ConvUpsampler(embed_dim, options.upsampler_channels, grid, image_size, in_chans)

    def mask(self, batch: int, patches: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        make = random_patch_mask if self.options.masking == "fixed" else bernoulli_patch_mask
        return make(batch, patches, self.options.mask_ratio, generator, device)

    def reconstruct(self, patches: torch.Tensor, report_to_image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """patches/report_to_image [B, P, E], mask [B, P] -> image [B, C, H, W]."""
        keep = (~mask).unsqueeze(-1).to(patches.dtype)
        if self.options.masking == "fixed":
            masked = patches * keep + self.mask_token.to(patches.dtype) * (1 - keep)
        else:
            masked = patches * keep / (1 - self.options.mask_ratio)
        q = masked + self.position.to(patches.dtype)
        fused = self.fuse_norm(q + self.fuse(q, report_to_image, report_to_image, need_weights=False)[0])
        decoded = self.decoder(fused, report_to_image)
        b, p, e = decoded.shape
        return self.upsampler(decoded.transpose(1, 2).reshape(b, e, self.grid, self.grid))

    def forward(self, inputs: ReconstructionInputs) -> torch.Tensor:
        feats = inputs.features
        b, p, _ = feats.patches.shape
        mask = self.mask(b, p, inputs.generator, feats.patches.device)
        pred = self.reconstruct(feats.patches, feats.report_to_image, mask).float()
        target = inputs.images.float()
        err = (pred - target).abs() if self.options.loss == "l1" else (pred - target) ** 2
        if self.options.loss_scope == "image":
            return self.options.scale * err.mean()
        pixels = grid_to_pixels(mask, feats.grid, target.shape[-2:])
        return self.options.scale * (err * pixels).sum() / (pixels.sum() * target.shape[1]).clamp_min(1.0)


def build(
    options: CMMIROptions,
    *,
    embed_dim: int,
    image_dim: int,  # noqa: ARG001 (interface)
    patch_size: int,  # noqa: ARG001 (interface)
    grid: int,
    image_size: int,
    in_chans: int,
) -> CMMIRHead:
    return CMMIRHead(options, embed_dim, grid, image_size, in_chans)


@hookimpl
def register_reconstruction_heads(register: Register) -> None:
    register(
        "cm-mir",
        build,
        options=CMMIROptions,
        description="feature-level masking, fused with f^{R->I}, transformer + conv decoder to the image, 10 x L1 (paper)",
    )
