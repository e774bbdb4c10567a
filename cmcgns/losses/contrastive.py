"""Contrastive losses: global InfoNCE and cross-modal-attention local alignment (vectorised)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over rows; targets default to the diagonal. Accepts soft targets [B, C]."""
    if targets is None:
        targets = torch.arange(logits.shape[0], device=logits.device)
    if targets.dim() == 2:
        return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()
    return F.cross_entropy(logits, targets)


def cross_attend(queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """Within-sample attention: queries [B, Q, E] attend over keys [B, K, E] -> [B, Q, E]."""
    scores = torch.einsum("bqe,bke->bqk", queries, keys) / temperature
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask.unsqueeze(1), torch.finfo(scores.dtype).min)
    return torch.einsum("bqk,bke->bqe", scores.softmax(-1), keys)


def local_alignment_loss(queries: torch.Tensor, attended: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """MGCA-style local contrast: within each sample, query i must match its own attended
    feature against the attended features of the sample's other queries. Rows/columns of
    masked queries are excluded. queries/attended [B, Q, E] (normalised), mask [B, Q]."""
    logits = torch.einsum("bie,bje->bij", queries, attended) / temperature
    pair_mask = mask.unsqueeze(1) & mask.unsqueeze(2)
    logits = logits.masked_fill(~pair_mask, torch.finfo(logits.dtype).min)
    targets = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
    losses = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none") + F.cross_entropy(logits, targets, reduction="none")
    weight = mask.to(losses.dtype)
    return (losses * weight).sum() / (2 * weight.sum().clamp_min(1.0))
