"""Negative sampler interface: given the (rank-gathered) batch embeddings, return the global
image-report contrastive loss with the sampler's choice of negatives."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass
class SamplerInputs:
    image: torch.Tensor  # [B, E] normalised global image embeddings (gathered across ranks)
    text: torch.Tensor  # [B, E] normalised global report embeddings (gathered)
    cross_local: torch.Tensor  # [B, E] normalised cross-modal local features (gathered)
    local_slice: slice  # rows of this rank inside the gathered batch
    temperature: float
    step: int


@dataclasses.dataclass
class SamplerOutput:
    loss: torch.Tensor
    stats: dict[str, float]


class NegativeSampler(nn.Module):
    name = "base"

    def forward(self, inputs: SamplerInputs) -> SamplerOutput:  # pragma: no cover - interface
        raise NotImplementedError
