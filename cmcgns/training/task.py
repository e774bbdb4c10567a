"""The pretraining task: the model (encodes) and the objective (named losses) in one module, so
DDP and checkpoints see every trained parameter and every sampler buffer."""

from __future__ import annotations

import torch
from torch import nn

from cmcgns import distributed as ddp
from cmcgns.config.schema import PretrainConfig
from cmcgns.heads.base import ReconstructionInputs
from cmcgns.models.cmcgns_model import CMCGNSModel
from cmcgns.objectives.cmcgns import CMCGNSObjective
from cmcgns.plugins.manager import get_registry


class PretrainTask(nn.Module):
    def __init__(self, model: CMCGNSModel, objective: CMCGNSObjective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        step: int,
        reconstruction: bool = False,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        feats = self.model.encode(batch)

        def reconstruction_inputs() -> ReconstructionInputs:
            return ReconstructionInputs(
                batch["images"],
                feats,
                generator or torch.Generator().manual_seed(step),
                lambda images: self.model.image_encoder(images)[1],
            )

        return self.objective(
            feats, step, reconstruction, reconstruction_inputs, meanings=batch.get("sentence_meanings")
        )


def build_task(config: PretrainConfig, rank: int | None = None, world_size: int | None = None) -> PretrainTask:
    """Model + objective for a (component-resolved) config; rank/world default to the process group's."""
    registry = get_registry()
    model = CMCGNSModel(config.model, config.data.image_size, config.data.max_sentences)
    e = config.model.embed_dim
    sampler = registry.get("negative_sampler", config.sampler.name).build(config.sampler.options, embed_dim=e)
    head = None
    if config.head.name != "none":
        enc = model.image_encoder
        head = registry.get("reconstruction_head", config.head.name).build(
            config.head.options,
            embed_dim=e,
            image_dim=enc.dim,
            patch_size=enc.patch_size,
            grid=enc.grid,
            image_size=config.data.image_size,
            in_chans=enc.in_chans,
        )
    objective = CMCGNSObjective(
        config.objective,
        e,
        sampler,
        head,
        rank=ddp.rank() if rank is None else rank,
        world_size=ddp.world_size() if world_size is None else world_size,
        gather=ddp.gather_with_grad,
        gather_no_grad=ddp.gather_no_grad,
    )
    return PretrainTask(model, objective)
