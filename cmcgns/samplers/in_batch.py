"""Plain in-batch negatives (CLIP/ConVIRT-style symmetric InfoNCE)."""

from __future__ import annotations

import pydantic
import torch

from cmcgns.losses.contrastive import info_nce
from cmcgns.samplers.base import NegativeSampler, SamplerInputs, SamplerOutput


class InBatchOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")


class InBatchSampler(NegativeSampler):
    name = "in-batch"

    def forward(self, inputs: SamplerInputs) -> SamplerOutput:
        img, txt = inputs.image[inputs.local_slice], inputs.text[inputs.local_slice]
        targets = torch.arange(inputs.local_slice.start, inputs.local_slice.stop, device=img.device)
        i2t = img @ inputs.text.t() / inputs.temperature
        t2i = txt @ inputs.image.t() / inputs.temperature
        loss = 0.5 * (info_nce(i2t, targets) + info_nce(t2i, targets))
        return SamplerOutput(loss, {})


def build(options: InBatchOptions, *, embed_dim: int) -> InBatchSampler:
    return InBatchSampler()
