"""Plain InfoNCE over every candidate of the gathered batch (CLIP/ConVIRT-style negatives)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cmcgns.samplers.base import ContrastiveProblem, NegativeSampler, SamplerOutput
from cmcgns.plugins import Options, Register, hookimpl


class InBatchOptions(Options):
    """in-batch takes no options."""


def info_nce(problem: ContrastiveProblem) -> torch.Tensor:
    """Mean cross-entropy of the local anchors over all candidates (both directions when symmetric)."""
    rows = problem.local_rows
    loss = F.cross_entropy(problem.anchors[rows] @ problem.candidates.t() / problem.temperature, problem.positives)
    if problem.symmetric:
        back = F.cross_entropy(problem.candidates[rows] @ problem.anchors.t() / problem.temperature, problem.positives)
        loss = 0.5 * (loss + back)
    return loss


class InBatchSampler(NegativeSampler):
    def forward(self, problem: ContrastiveProblem) -> SamplerOutput:
        return SamplerOutput(info_nce(problem))


def build(options: InBatchOptions, *, embed_dim: int) -> InBatchSampler:  # noqa: ARG001 (interface)
    return InBatchSampler()


@hookimpl
def register_negative_samplers(register: Register) -> None:
    register("in-batch", build, options=InBatchOptions, description="plain InfoNCE over the gathered batch")
