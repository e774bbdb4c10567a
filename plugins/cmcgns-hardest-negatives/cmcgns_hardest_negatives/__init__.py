"""Top-k hardest negatives, as a cmcgns plugin (works at the global and the local report level)."""

from __future__ import annotations

import pydantic
import torch
import torch.nn.functional as F

from cmcgns.plugins import Options, Register, hookimpl
from cmcgns.samplers.base import ContrastiveProblem, NegativeSampler, SamplerOutput


class HardestKOptions(Options):
    k: int = pydantic.Field(4, ge=1)
    skip_same_group: bool = pydantic.Field(
        False, description="never use rows of the anchor's own report as negatives (e.g. its other sentences)"
    )


class HardestKSampler(NegativeSampler):
    def __init__(self, options: HardestKOptions) -> None:
        super().__init__()
        self.options = options

    def _loss(
        self, anchors: torch.Tensor, candidates: torch.Tensor, problem: ContrastiveProblem
    ) -> tuple[torch.Tensor, torch.Tensor]:
        rows = problem.local_rows
        logits = anchors[rows] @ candidates.t() / problem.temperature
        arange = torch.arange(logits.shape[0], device=logits.device)
        positives = problem.positives
        excluded = torch.zeros_like(logits, dtype=torch.bool)
        excluded[arange, positives] = True
        if self.options.skip_same_group:
            excluded |= problem.groups[rows].unsqueeze(1) == problem.groups.unsqueeze(0)
        negatives = logits.masked_fill(excluded, torch.finfo(logits.dtype).min)
        k = max(1, min(self.options.k, candidates.shape[0] - 1))
        hardest = negatives.topk(k, dim=1).values
        loss = F.cross_entropy(
            torch.cat([logits[arange, positives].unsqueeze(1), hardest], dim=1), torch.zeros_like(arange)
        )
        return loss, (hardest[:, 0] - logits[arange, positives]).detach().mean()

    def forward(self, problem: ContrastiveProblem) -> SamplerOutput:
        loss, gap = self._loss(problem.anchors, problem.candidates, problem)
        if problem.symmetric:
            back, _ = self._loss(problem.candidates, problem.anchors, problem)
            loss = 0.5 * (loss + back)
        return SamplerOutput(loss, {"hardest_minus_positive": gap})


@hookimpl
def register_negative_samplers(register: Register) -> None:
    register(
        "hardest-k",
        lambda options, *, embed_dim: HardestKSampler(options),  # noqa: ARG005 (interface)
        options=HardestKOptions,
        description="InfoNCE over the positive and the k hardest negatives of the problem",
    )
