"""The CM-CGNS model: it encodes, nothing else (losses live in `cmcgns.objectives`).

image -> timm backbone -> local features f^I (patch tokens or CNN grid, projected to E and, by default
as in the official code, L2-normalised) and a
global feature f̄^I (CLS for ViTs, attention pooling for CNNs, configurable);
report -> transformers encoder -> tokens projected to E and L2-normalised, averaged per sentence
(f^R), attention-pooled over sentences to f̄^R;
one cross-modal attention block -> f^{R->I} and f^{I->R}.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cmcgns.config.schema import ModelConfig
from cmcgns.errors import ConfigError
from cmcgns.models.cross_attention import CrossModalAttention
from cmcgns.models.features import Features
from cmcgns.models.image_encoder import ImageEncoder
from cmcgns.models.pooling import AttentionPool
from cmcgns.models.text_encoder import TextEncoder, sentence_mean


class CMCGNSModel(nn.Module):
    def __init__(self, config: ModelConfig, image_size: int, max_sentences: int) -> None:
        super().__init__()
        self.config = config
        self.max_sentences = max_sentences
        self.image_encoder = ImageEncoder(config.image.name, image_size, config.image.pretrained_path)
        self.text_encoder = TextEncoder(
            config.text.path, "cls" if config.text.pooling == "cls" else "mean", config.text.freeze_layers
        )
        e, d_img, d_txt = config.embed_dim, self.image_encoder.dim, self.text_encoder.dim
        pooling = config.image.pooling
        self.image_pooling = ("cls" if self.image_encoder.is_vit else "attention") if pooling == "auto" else pooling
        if self.image_pooling == "cls" and not self.image_encoder.num_prefix_tokens:
            raise ConfigError(f"model.image.pooling: {config.image.name} has no CLS token; use attention or mean")
        self.image_pool = (
            AttentionPool(d_img, config.pool_heads, out_dim=e, num_positions=self.image_encoder.grid**2)
            if self.image_pooling == "attention"
            else None
        )
        self.image_global = nn.Linear(d_img, e) if self.image_pool is None else nn.Identity()
        self.image_local = nn.Linear(d_img, e)
        self.text_local = nn.Linear(d_txt, e)
        self.sentence_pool = AttentionPool(e, config.pool_heads) if config.text.pooling == "attention" else None
        self.text_global = nn.Linear(d_txt, e) if self.sentence_pool is None else nn.Identity()
        self.cross_attention = CrossModalAttention(e, config.cross_attention, config.attention_temperature)

    @property
    def grid(self) -> tuple[int, int]:
        return (self.image_encoder.grid, self.image_encoder.grid)

    def _image(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cls, patches = self.image_encoder(images)
        if self.image_pooling == "attention":
            pooled = self.image_pool(patches)
        else:
            pooled = self.image_global(cls if self.image_pooling == "cls" else patches.mean(1))
        local = self.image_local(patches)
        if self.config.normalize_patches:  # official: L2-normalised before the cross-attention, SimSiam and CM-MIR
            local = F.normalize(local, dim=-1)
        return F.normalize(pooled, dim=-1), local

    def _report(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        text = self.text_encoder(batch["input_ids"], batch["attention_mask"])
        tokens = F.normalize(self.text_local(text["tokens"]), dim=-1)
        sentences, sentence_mask = sentence_mean(tokens, batch["sentence_ids"], self.max_sentences)
        if self.sentence_pool is not None:
            pooled = self.sentence_pool(sentences, sentence_mask)
        else:
            pooled = self.text_global(text["global"])
        return F.normalize(pooled, dim=-1), sentences, sentence_mask

    def encode(self, batch: dict[str, torch.Tensor]) -> Features:
        image_global, patches = self._image(batch["images"])
        report_global, sentences, sentence_mask = self._report(batch)
        report_to_image, image_to_report = self.cross_attention(patches, sentences, sentence_mask)
        return Features(
            image_global, report_global, patches, sentences, sentence_mask, report_to_image, image_to_report, self.grid
        )

    def embed_images(self, images: torch.Tensor) -> torch.Tensor:
        return self._image(images)[0]

    def embed_reports(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._report(batch)[0]
