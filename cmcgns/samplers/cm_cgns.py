"""Cross-modal clustering-guided negative sampling (CM-CGNS).

Each step the sampler
1. clusters the cross-modal local features (text tokens attended onto image patches and
   image patches attended onto text, fused per pair) with spherical k-means whose centroids
   are sampler state (k-means++ seeded, momentum or full recompute updates, all-reduced);
2. treats other pairs of the anchor's own cluster as likely false negatives: masked out of
   the InfoNCE denominator (``mask``) or given soft positive weight (``soft``);
3. adds, per anchor, the hardest pair from the nearest *other* cluster as an extra,
   up-weighted logit column (hard negative).

With ``cluster_on: text`` it is the single-modal clustering-guided baseline (``cluster-ns``).
"""

from __future__ import annotations

import math
from typing import Literal

import pydantic
import torch
import torch.nn.functional as F

from cmcgns.errors import ConfigError
from cmcgns.losses.contrastive import info_nce
from cmcgns.samplers import kmeans
from cmcgns.samplers.base import NegativeSampler, SamplerInputs, SamplerOutput
from cmcgns.training import distributed as ddp


class CMCGNSOptions(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    num_clusters: int = pydantic.Field(8, ge=2)
    kmeans_iterations: int = pydantic.Field(5, ge=1)
    backend: Literal["auto", "torch", "faiss"] = "auto"
    cluster_on: Literal["cross-modal", "text"] = "cross-modal"
    warmup_steps: int = pydantic.Field(0, ge=0, description="steps of plain InfoNCE before clusters are used")
    false_negatives: Literal["mask", "soft", "none"] = "mask"
    false_negative_threshold: float = pydantic.Field(-1.0, ge=-1.0, le=1.0, description="min cosine of same-cluster pairs")
    soft_weight: float = pydantic.Field(0.5, ge=0.0, le=1.0)
    hard_negatives: bool = True
    hard_negative_weight: float = pydantic.Field(2.0, gt=0.0)
    update: Literal["momentum", "recompute"] = "momentum"
    momentum: float = pydantic.Field(0.9, ge=0.0, lt=1.0)
    seed: int = 0


class CMCGNSSampler(NegativeSampler):
    name = "cm-cgns"

    def __init__(self, options: CMCGNSOptions, embed_dim: int) -> None:
        super().__init__()
        self.options = options
        self.register_buffer("centroids", torch.zeros(options.num_clusters, embed_dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    # -- clustering ---------------------------------------------------------------------
    def _backend(self) -> str:
        if self.options.backend == "faiss" and ddp.is_distributed():
            return "torch"  # faiss has no cross-rank reduction; torch k-means all-reduces
        if self.options.backend == "auto":
            return "faiss" if kmeans.faiss_available() and not ddp.is_distributed() else "torch"
        return self.options.backend

    @torch.no_grad()
    def update_centroids(self, features_all: torch.Tensor, local: slice) -> None:
        k = self.options.num_clusters
        if not bool(self.initialized):
            if features_all.shape[0] < k:
                raise ConfigError(f"cm-cgns: num_clusters={k} exceeds the global batch size {features_all.shape[0]}")
            gen = torch.Generator().manual_seed(self.options.seed)
            self.centroids.copy_(kmeans.init_centroids(features_all.detach().cpu(), k, gen).to(self.centroids))
            self.initialized.fill_(True)
        if self._backend() == "faiss":
            new = kmeans.kmeans_faiss(features_all, self.centroids, self.options.kmeans_iterations, self.options.seed + int(self.updates))
        else:
            new = kmeans.kmeans_torch(features_all[local], self.centroids, self.options.kmeans_iterations)
        if self.options.update == "momentum" and int(self.updates) > 0:
            new = F.normalize(self.options.momentum * self.centroids + (1 - self.options.momentum) * new.to(self.centroids), dim=1)
        self.centroids.copy_(new.to(self.centroids))
        self.updates += 1

    # -- loss -----------------------------------------------------------------------------
    def _directional_loss(self, anchors: torch.Tensor, others: torch.Tensor, inputs: SamplerInputs,
                          false_neg: torch.Tensor, hard_candidates: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        logits = anchors @ others.t() / inputs.temperature
        rows = torch.arange(anchors.shape[0], device=anchors.device)
        positives = rows + inputs.local_slice.start
        neg_min = torch.finfo(logits.dtype).min
        hard_rate = 0.0
        extra = None
        if hard_candidates is not None:
            hardest = logits.masked_fill(~hard_candidates, neg_min).max(dim=1).values
            has = hard_candidates.any(dim=1)
            extra = torch.where(has, hardest + math.log(self.options.hard_negative_weight), torch.full_like(hardest, neg_min))
            hard_rate = float(has.float().mean())
        mode = self.options.false_negatives
        if mode == "mask":
            logits = logits.masked_fill(false_neg, neg_min)
        if extra is not None:
            logits = torch.cat([logits, extra.unsqueeze(1)], dim=1)
        if mode == "soft":
            targets = torch.zeros_like(logits)
            targets[rows, positives] = 1.0
            targets[:, : others.shape[0]] += self.options.soft_weight * false_neg.to(logits.dtype)
            return info_nce(logits, targets / targets.sum(1, keepdim=True)), hard_rate
        return info_nce(logits, positives), hard_rate

    def forward(self, inputs: SamplerInputs) -> SamplerOutput:
        opts = self.options
        features = (inputs.cross_local if opts.cluster_on == "cross-modal" else inputs.text).detach().float()
        features = F.normalize(features, dim=1)
        self.update_centroids(features, inputs.local_slice)
        local = inputs.local_slice
        img_l, txt_l = inputs.image[local], inputs.text[local]
        if inputs.step < opts.warmup_steps:
            empty = torch.zeros(img_l.shape[0], inputs.image.shape[0], dtype=torch.bool, device=img_l.device)
            l1, _ = self._directional_loss(img_l, inputs.text, inputs, empty, None)
            l2, _ = self._directional_loss(txt_l, inputs.image, inputs, empty, None)
            return SamplerOutput(0.5 * (l1 + l2), {"warmup": 1.0})
        centroids = self.centroids.to(features)
        labels = kmeans.assign(features, centroids)
        labels_l = labels[local]
        own = torch.zeros(img_l.shape[0], features.shape[0], dtype=torch.bool, device=features.device)
        own[torch.arange(img_l.shape[0]), torch.arange(local.start, local.stop)] = True
        same = (labels_l.unsqueeze(1) == labels.unsqueeze(0)) & ~own
        if opts.false_negative_threshold > -1.0:
            same &= (features[local] @ features.t()) > opts.false_negative_threshold
        false_neg = same if opts.false_negatives != "none" else torch.zeros_like(same)
        hard = None
        if opts.hard_negatives:
            c_sim = centroids @ centroids.t()
            c_sim.fill_diagonal_(-float("inf"))
            nearest = c_sim.argmax(dim=1)
            hard = labels.unsqueeze(0) == nearest[labels_l].unsqueeze(1)
        l1, hard_rate = self._directional_loss(img_l, inputs.text, inputs, false_neg, hard)
        l2, _ = self._directional_loss(txt_l, inputs.image, inputs, false_neg, hard)
        counts = torch.bincount(labels, minlength=opts.num_clusters).float()
        p = counts / counts.sum()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum() / math.log(opts.num_clusters))
        stats = {"false_negative_rate": float(same.float().mean()), "hard_negative_rate": hard_rate, "cluster_entropy": entropy}
        return SamplerOutput(0.5 * (l1 + l2), stats)


def build(options: CMCGNSOptions, *, embed_dim: int) -> CMCGNSSampler:
    return CMCGNSSampler(options, embed_dim)


class ClusterNSOptions(CMCGNSOptions):
    cluster_on: Literal["cross-modal", "text"] = "text"


def build_text_only(options: ClusterNSOptions, *, embed_dim: int) -> CMCGNSSampler:
    sampler = CMCGNSSampler(CMCGNSOptions(**options.model_dump()), embed_dim)
    sampler.name = "cluster-ns"
    return sampler
