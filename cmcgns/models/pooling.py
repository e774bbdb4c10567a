"""Attention pooling: one learned query (the masked mean of the set, plus an optional position
embedding) attends over [mean; set]; the first output is the pooled vector. Used for the global
report feature over a report's sentences (official ``SentenceAttentionPool``) and for the global
image feature over a CNN's feature grid (CLIP's ``AttentionPool2d``)."""

from __future__ import annotations

import torch
from torch import nn


def divisible_heads(dim: int, wanted: int) -> int:
    """The largest head count <= `wanted` (and <= dim) that divides `dim`."""
    heads = min(wanted, dim)
    while dim % heads:
        heads -= 1
    return heads


class AttentionPool(nn.Module):
    def __init__(
        self, dim: int, num_heads: int = 8, out_dim: int | None = None, num_positions: int | None = None
    ) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, divisible_heads(dim, num_heads), batch_first=True)
        self.position = nn.Parameter(torch.randn(num_positions + 1, dim) / dim**0.5) if num_positions else None
        self.proj = nn.Linear(dim, out_dim) if out_dim is not None and out_dim != dim else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, N, D], mask [B, N] (True = valid) -> [B, out_dim]."""
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        weights = mask.unsqueeze(-1).to(x.dtype)
        mean = (x * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp_min(1.0)
        tokens = torch.cat([mean, x], dim=1)
        if self.position is not None:
            tokens = tokens + self.position[: tokens.shape[1]].to(tokens.dtype)
        key_padding = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], dim=1)
        pooled, _ = self.attn(tokens[:, :1], tokens, tokens, key_padding_mask=key_padding, need_weights=False)
        return self.proj(pooled[:, 0])
