"""Local losses that need no negative sampler: SimSiam and MGCA-style within-sample InfoNCE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SimSiamPredictor(nn.Module):
    """h: the 2-layer predictor of SimSiam (official 768 -> 384 -> ReLU -> 768)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return self.net(x.reshape(-1, shape[-1])).reshape(shape)


def simsiam_loss(
    x: torch.Tensor, y: torch.Tensor, predictor: nn.Module, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """-1/2 [cos(h(x), sg(y)) + cos(h(y), sg(x))], averaged over valid rows. x, y [..., E]; no
    negatives. Bounded below by -1 (reached when the predictor maps each view onto the other)."""
    loss = -0.5 * (
        F.cosine_similarity(predictor(x), y.detach(), dim=-1) + F.cosine_similarity(predictor(y), x.detach(), dim=-1)
    )
    if mask is None:
        return loss.mean()
    weight = mask.to(loss.dtype)
    return (loss * weight).sum() / weight.sum().clamp_min(1.0)


def within_sample_info_nce(
    queries: torch.Tensor, attended: torch.Tensor, mask: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MGCA-style local contrast: within each sample, query i must match its own attended feature
    against the attended features of the sample's other queries (both directions). Masked queries
    take no part. queries/attended [B, Q, E] (normalised), mask [B, Q]."""
    logits = torch.einsum("bie,bje->bij", queries, attended) / temperature
    pair_mask = mask.unsqueeze(1) & mask.unsqueeze(2)
    logits = logits.masked_fill(~pair_mask, torch.finfo(logits.dtype).min)
    targets = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
    losses = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none") + F.cross_entropy(
        logits, targets, reduction="none"
    )
    weight = mask.to(losses.dtype)
    return (losses * weight).sum() / (2 * weight.sum().clamp_min(1.0))
