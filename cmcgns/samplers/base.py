"""Negative sampler interface.

A sampler receives one contrastive problem and returns its loss. The objective decides where a
sampler acts (``objective.sampler_on``): on the local report loss (paper: each sentence feature
against every cross-modal sentence feature f^{I->R} of the global batch) or on the global
image-report loss. The problem looks the same at both granularities:

- ``anchors`` [N, E] and ``candidates`` [N, E], L2-normalised and gathered over all ranks; the
  positive of anchor row i is candidate row i, every other candidate is a negative;
- ``groups`` [N]: the report each row comes from (one row per report at the global level,
  several sentences per report at the local level);
- ``local_rows``: the rows whose anchors this rank is responsible for (its shard of the gathered
  batch); the loss is the mean over these anchors;
- ``temperature``: a float or a 0-dim tensor (the learnable global temperature carries gradient);
- ``symmetric``: also contrast candidates -> anchors and average (CLIP-style global loss);
- ``step``: the optimiser step;
- ``meanings`` [N] (local report problem only, and only for a sampler with ``reads_meanings``): the
  recorded meaning of each row's sentence (``meaning_id``, -1 for none), the synthetic data's ground
  truth. No trained sampler reads it; the ``oracle`` upper bound does.

The sampler returns a scalar loss and named statistics as tensors (never host floats: the
training loop moves them to the host on logging steps only). Samplers that keep state (e.g.
cluster centroids) keep it in buffers so checkpoints and resume carry it; they receive rank
information only through the problem, so the same code runs in one process and under DDP.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn


@dataclasses.dataclass
class ContrastiveProblem:
    anchors: torch.Tensor
    candidates: torch.Tensor
    groups: torch.Tensor
    local_rows: slice
    temperature: float | torch.Tensor
    step: int
    symmetric: bool = False
    meanings: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.anchors.shape != self.candidates.shape:
            raise ValueError(
                f"anchors {tuple(self.anchors.shape)} and candidates {tuple(self.candidates.shape)} differ in shape"
            )
        if self.groups.shape != self.anchors.shape[:1]:
            raise ValueError(
                f"groups must have one entry per row ({self.anchors.shape[0]}), got {tuple(self.groups.shape)}"
            )
        if self.meanings is not None and self.meanings.shape != self.groups.shape:
            raise ValueError(
                f"meanings must have one entry per row ({self.anchors.shape[0]}), got {tuple(self.meanings.shape)}"
            )

    @property
    def positives(self) -> torch.Tensor:
        """Column index of each local anchor's positive."""
        return torch.arange(self.local_rows.start, self.local_rows.stop, device=self.anchors.device)

    def reversed(self) -> ContrastiveProblem:
        """The same problem with the roles of anchors and candidates swapped."""
        return dataclasses.replace(self, anchors=self.candidates, candidates=self.anchors)


@dataclasses.dataclass
class SamplerOutput:
    loss: torch.Tensor
    stats: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


class NegativeSampler(nn.Module):
    """Base class: ``forward(problem: ContrastiveProblem) -> SamplerOutput``. ``reads_meanings``: the
    sampler needs the rows' recorded meanings (synthetic data only), so the batches carry them."""

    reads_meanings = False

    def forward(self, problem: ContrastiveProblem) -> SamplerOutput:  # pragma: no cover - interface
        raise NotImplementedError
