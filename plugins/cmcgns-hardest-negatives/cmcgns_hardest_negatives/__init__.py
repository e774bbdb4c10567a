"""Top-k hardest in-batch negatives, as a cmcgns plugin."""

from __future__ import annotations

import pydantic
import torch
import torch.nn.functional as F

from cmcgns.plugins import hookimpl
from cmcgns.samplers.base import NegativeSampler, SamplerInputs, SamplerOutput


class HardestKOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    k: int = pydantic.Field(4, ge=1)


class HardestKSampler(NegativeSampler):
    name = "hardest-k"

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def _loss(self, anchors: torch.Tensor, others: torch.Tensor, inputs: SamplerInputs) -> torch.Tensor:
        logits = anchors @ others.t() / inputs.temperature
        rows = torch.arange(anchors.shape[0], device=anchors.device)
        positives = rows + inputs.local_slice.start
        pos = logits[rows, positives]
        negatives = logits.clone()
        negatives[rows, positives] = torch.finfo(logits.dtype).min
        k = min(self.k, others.shape[0] - 1)
        hardest = negatives.topk(k, dim=1).values
        return F.cross_entropy(torch.cat([pos.unsqueeze(1), hardest], dim=1), torch.zeros_like(rows))

    def forward(self, inputs: SamplerInputs) -> SamplerOutput:
        local = inputs.local_slice
        loss = 0.5 * (self._loss(inputs.image[local], inputs.text, inputs) + self._loss(inputs.text[local], inputs.image, inputs))
        return SamplerOutput(loss, {})


@hookimpl
def register_negative_samplers(register):
    register("hardest-k", lambda options, *, embed_dim: HardestKSampler(options.k), options=HardestKOptions,
             description="InfoNCE over the positive and the k hardest in-batch negatives")
