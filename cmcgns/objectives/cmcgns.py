"""The CM-CGNS objective: named losses from the model's features (open_clip's model/loss split).

Stage I:  global_loss + local_image_loss + local_report_loss   (weights in ``objective.weights``)
Stage II: the same + reconstruction_loss from the reconstruction head.

- global_loss: symmetric CLIP InfoNCE between f̄^I and f̄^R over the rank-gathered batch, with a
  learnable logit scale (initial temperature 0.1, clamped at ``max_logit_scale``).
- local_image_loss: SimSiam between each patch feature f^I_p and its f^{R->I}_p (2-layer predictor,
  stop-gradient, no negatives); or MGCA-style within-image InfoNCE (``mgca``) for the baseline.
- local_report_loss: each sentence feature f^R_m (anchor) against every cross-modal sentence
  feature f^{I->R} of the gathered batch (its own is the positive), through the negative sampler.
``sampler_on: global`` moves the sampler to the global loss (the local report loss is then plain
InfoNCE). Rank and world size are given to the objective, never looked up by the model or sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cmcgns.config.schema import ObjectiveConfig
from cmcgns.heads.base import ReconstructionHead, ReconstructionInputs
from cmcgns.losses.contrastive import SimSiamPredictor, simsiam_loss, within_sample_info_nce
from cmcgns.models.features import Features
from cmcgns.samplers.base import ContrastiveProblem, NegativeSampler
from cmcgns.samplers.in_batch import info_nce

Gather = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class CMCGNSObjective(nn.Module):
    def __init__(
        self,
        config: ObjectiveConfig,
        embed_dim: int,
        sampler: NegativeSampler,
        head: ReconstructionHead | None,
        rank: int = 0,
        world_size: int = 1,
        gather: Gather = _identity,
        gather_no_grad: Gather = _identity,
    ) -> None:
        super().__init__()
        self.config = config
        self.sampler = sampler
        self.head = head
        self.rank, self.world_size = rank, world_size
        self.gather, self.gather_no_grad = gather, gather_no_grad
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1.0 / config.temperature)), requires_grad=config.learnable_temperature
        )
        self.predictor = (
            SimSiamPredictor(embed_dim, config.predictor_hidden or max(1, embed_dim // 2))
            if config.local_image == "simsiam"
            else None
        )

    def global_temperature(self) -> torch.Tensor:
        return 1.0 / self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    def _contrast(self, problem: ContrastiveProblem, use_sampler: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if use_sampler:
            out = self.sampler(problem)
            return out.loss, out.stats
        return info_nce(problem), {}

    def global_problem(self, feats: Features, step: int) -> ContrastiveProblem:
        b = feats.image_global.shape[0]
        image, report = self.gather(feats.image_global), self.gather(feats.report_global)
        groups = torch.arange(image.shape[0], device=image.device)
        return ContrastiveProblem(
            image,
            report,
            groups,
            slice(self.rank * b, (self.rank + 1) * b),
            self.global_temperature(),
            step,
            symmetric=True,
        )

    def local_report_problem(
        self, feats: Features, step: int, meanings: torch.Tensor | None = None
    ) -> ContrastiveProblem:
        """All sentences of the gathered batch: anchors f^R, candidates f^{I->R}, grouped by report
        (`meanings` [B, M]: the sentences' recorded meanings, passed on for a sampler that reads them)."""
        b, m, e = feats.sentences.shape
        anchors = self.gather(F.normalize(feats.sentences, dim=-1).reshape(b * m, e))
        candidates = self.gather(F.normalize(feats.image_to_report, dim=-1).reshape(b * m, e))
        valid = self.gather_no_grad(feats.sentence_mask.reshape(-1))
        groups = torch.arange(valid.shape[0], device=valid.device) // m
        before = valid[: self.rank * b * m].sum()
        mine = valid[self.rank * b * m : (self.rank + 1) * b * m].sum()
        # the step's one host read: three counts, for this rank's slice bounds and the number of valid
        # sentences; with it known, compaction is an index_select (a boolean index would sync again, and
        # once more in backward)
        start, count, total = (int(v) for v in torch.stack([before, mine, valid.sum()]).tolist())
        rows = torch.nonzero_static(valid, size=total).squeeze(1)
        return ContrastiveProblem(
            anchors.index_select(0, rows),
            candidates.index_select(0, rows),
            groups.index_select(0, rows),
            slice(start, start + count),
            self.config.local_report_temperature,
            step,
            meanings=None if meanings is None else self.gather_no_grad(meanings.reshape(-1)).index_select(0, rows),
        )

    def local_image_loss(self, feats: Features) -> torch.Tensor:
        patches = F.normalize(feats.patches, dim=-1)
        if self.config.local_image == "simsiam":  # official: the predictor sees the raw f^{R->I}
            raw = self.config.simsiam_attended == "raw"
            return simsiam_loss(
                patches, feats.report_to_image if raw else F.normalize(feats.report_to_image, dim=-1), self.predictor
            )
        attended = F.normalize(feats.report_to_image, dim=-1)
        mask = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
        return within_sample_info_nce(patches, attended, mask, self.config.local_image_temperature)

    def forward(
        self,
        feats: Features,
        step: int,
        reconstruction: bool = False,
        reconstruction_inputs: Callable[[], ReconstructionInputs] | None = None,
        meanings: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """-> {"<name>_loss": weighted loss, ...} plus statistics (0-dim tensors, not losses).
        `meanings`: the batch's `sentence_meanings`, for a sampler that reads them (the oracle)."""
        w = self.config.weights
        on_global = self.config.sampler_on == "global"
        out: dict[str, torch.Tensor] = {}
        global_loss, global_stats = self._contrast(self.global_problem(feats, step), on_global)
        out["global_loss"] = w.global_ * global_loss
        stats = dict(global_stats)
        if w.local_image > 0 and self.config.local_image != "none":
            out["local_image_loss"] = w.local_image * self.local_image_loss(feats)
        if w.local_report > 0:
            local_problem = self.local_report_problem(feats, step, meanings)
            local_problem_rows = local_problem.anchors.shape[0]
            local_loss, local_stats = self._contrast(local_problem, not on_global)
            out["local_report_loss"] = w.local_report * local_loss
            stats.update(local_stats)
            # the candidates each sentence is contrasted with (its chance loss is log of this)
            out["local_report_candidates"] = torch.tensor(float(local_problem_rows), device=local_loss.device)
        if reconstruction:
            if self.head is None:
                raise RuntimeError("a reconstruction stage needs a reconstruction head (head.name is 'none')")
            out["reconstruction_loss"] = w.reconstruction * self.head(reconstruction_inputs())
        out.update({f"sampler/{k}": v.detach() for k, v in stats.items()})
        out["temperature"] = self.global_temperature().detach()
        return out


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """The sum of the entries whose names end in ``_loss``."""
    return sum(v for k, v in losses.items() if k.endswith("_loss"))
