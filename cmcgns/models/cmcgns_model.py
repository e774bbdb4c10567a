"""The CM-CGNS model: encoders, projections, global/local alignment, sampler and CM-MIR head."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from cmcgns.config.schema import LossWeights, ModelConfig
from cmcgns.heads.base import ReconstructionHead, apply_patch_mask, patchify, random_patch_mask
from cmcgns.losses.contrastive import cross_attend, local_alignment_loss
from cmcgns.models.image_encoder import ImageEncoder
from cmcgns.models.text_encoder import TextEncoder
from cmcgns.samplers.base import NegativeSampler, SamplerInputs
from cmcgns.training import distributed as ddp


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class CMCGNSModel(nn.Module):
    def __init__(self, config: ModelConfig, image_size: int, max_sentences: int, weights: LossWeights,
                 sampler: NegativeSampler, build_head: Callable[..., ReconstructionHead]) -> None:
        super().__init__()
        self.config = config
        self.weights = weights
        self.max_sentences = max_sentences
        self.image_encoder = ImageEncoder(config.image.name, image_size, config.image.pretrained_path)
        self.text_encoder = TextEncoder(config.text.path, config.text.pooling, config.text.freeze_layers)
        e = config.embed_dim
        self.image_global = nn.Linear(self.image_encoder.dim, e)
        self.image_local = nn.Linear(self.image_encoder.dim, e)
        self.text_global = nn.Linear(self.text_encoder.dim, e)
        self.text_local = nn.Linear(self.text_encoder.dim, e)
        self.sampler = sampler
        self.head = build_head(image_dim=self.image_encoder.dim, text_dim=self.text_encoder.dim,
                               patch_size=self.image_encoder.patch_size, in_chans=self.image_encoder.in_chans)

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.image_encoder(images)
        return F.normalize(self.image_global(pooled), dim=-1)

    def embed_reports(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        text = self.text_encoder(batch["input_ids"], batch["attention_mask"], batch["sentence_ids"], self.max_sentences)
        return F.normalize(self.text_global(text["global"]), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor], step: int, reconstruction: bool,
                mask_generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, w = self.config, self.weights
        images = batch["images"]
        pooled, patches = self.image_encoder(images)
        text = self.text_encoder(batch["input_ids"], batch["attention_mask"], batch["sentence_ids"], self.max_sentences)
        v = F.normalize(self.image_global(pooled), dim=-1)
        t = F.normalize(self.text_global(text["global"]), dim=-1)
        pv = F.normalize(self.image_local(patches), dim=-1)
        tw = F.normalize(self.text_local(text["tokens"]), dim=-1)
        ts = F.normalize(self.text_local(text["sentences"]), dim=-1)
        token_mask, sentence_mask = text["token_mask"], text["sentence_mask"]
        patch_mask = torch.ones(pv.shape[:2], dtype=torch.bool, device=pv.device)
        tau = cfg.local_temperature
        # token/sentence <-> patch cross-modal attention alignment
        t2i = F.normalize(cross_attend(tw, pv, None, tau), dim=-1)
        i2t = F.normalize(cross_attend(pv, tw, token_mask, tau), dim=-1)
        s2i = F.normalize(cross_attend(ts, pv, None, tau), dim=-1)
        loss_token = 0.5 * (local_alignment_loss(tw, t2i, token_mask, tau) + local_alignment_loss(pv, i2t, patch_mask, tau))
        loss_sentence = local_alignment_loss(ts, s2i, sentence_mask, tau)
        cross_local = F.normalize(F.normalize(_masked_mean(t2i, token_mask), dim=-1) + F.normalize(i2t.mean(1), dim=-1), dim=-1)
        # global contrast with the sampler's negatives over the rank-gathered batch
        b = v.shape[0]
        local = slice(ddp.rank() * b, (ddp.rank() + 1) * b)
        out = self.sampler(SamplerInputs(ddp.gather_with_grad(v), ddp.gather_with_grad(t), ddp.gather_with_grad(cross_local),
                                         local, cfg.temperature, step))
        total = w.global_ * out.loss + w.token * loss_token + w.sentence * loss_sentence
        parts = {"global": float(out.loss.detach()), "token": float(loss_token.detach()), "sentence": float(loss_sentence.detach())}
        parts.update({f"sampler/{k}": v for k, v in out.stats.items()})
        if reconstruction and self.head.enabled:
            enc = self.image_encoder
            gen = mask_generator or torch.Generator().manual_seed(step)
            mask = random_patch_mask(b, enc.grid, self.head.mask_ratio, gen, images.device)
            _, masked_patches = enc(apply_patch_mask(images, mask, enc.patch_size))
            loss_rec = self.head(masked_patches, text["tokens"], batch["attention_mask"] > 0,
                                 patchify(images, enc.patch_size), mask)
            total = total + w.reconstruction * loss_rec
            parts["reconstruction"] = float(loss_rec.detach())
        parts["loss"] = float(total.detach())
        return total, parts
