"""Cross-modal clustering-guided negative sampling (CM-CGNS), and its single-modal baseline.

Paper (abstract, cluster figure) and official code (``Kmeans_Cluster.py``, ``text_local_loss_fn``);
see ``shared/spec/method.md`` section 2.6. For a contrastive problem (at the paper's level: sentence
features f^R as anchors, cross-modal sentence features f^{I->R} as candidates, the whole gathered
batch of sentences):

1. **Memory** (``cmcgns.samplers.cluster_memory``): K centroids, persistent across steps, of the
   cross-modal candidates (``cm-cgns``) or of the single-modal anchors (``cluster-ns``).
   ``memory: queue`` (default) keeps recent rows, seeds by k-means++ over them and refits by spherical
   k-means every ``refit_every`` steps; ``memory: official`` is the official online EMA after a
   greedy-chain initialisation over every pooled row. Before initialisation the loss is plain InfoNCE.
2. **Hard negatives.** Each anchor is assigned to its most similar centroid; the centroid with the
   2nd-highest cosine (its own cluster's centre skipped) is appended as one extra candidate column,
   with logit ``cos / T + log(weight)`` (``count``, the default: the column counts ``weight`` times, as
   ClusterNS) or ``hard_negative_weight * cos / T`` (the official ``logit`` weighting, weight 3: with a
   memory that fits the features at T = 0.1 the centroid is about as close as the positive and its
   tripled logit dominates the row; benchmarks/README.md). Unlike the
   official code, other anchors' hard negatives do not leak into a row as constant e^0 terms.
3. **False negatives** are flagged pairs (a, b), b != a. ``false_negative_pairs: anchors`` (official):
   anchors a and b fall in the same cluster; ``anchor-candidate``: anchor a's cluster is candidate b's.
   ``bml`` (official): flagged pairs stay in the denominator and a bidirectional margin term
   mean[ReLU(S_ab - S_aa + alpha) + ReLU(S_aa - S_ab - beta)] over *those pairs only* is added with
   ``bml_weight`` (the official code averages over all N^2 entries, adding a constant);
   ``mask``: removed from the denominator, except in rows where that would remove every negative;
   ``soft``: given ``soft_weight`` of positive target mass; ``none``: ignored.

Order within a training step: the step's rows enter the memory (queue or initialisation pool); if the
memory initialises on this step, this step already uses it; the loss is scored with the centroids as
they stand before this step's update; then the centroids move (EMA towards this step's cluster means,
idle ones re-seeded) and, when due, the memory is refit (effective from the next step).

Statistics (0-dim tensors): initialized, clusters_in_use, cluster_entropy, false_negative_rate,
hard_negative_margin (mean cos(anchor, positive) - cos(anchor, hard negative)), and the features'
spread: within_image_cos / across_image_cos (candidates of the same / different reports),
row_to_centroid_cos, centroid_cos.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import pydantic
import torch
import torch.nn.functional as F

from cmcgns.samplers import kmeans
from cmcgns.samplers.base import ContrastiveProblem, NegativeSampler, SamplerOutput
from cmcgns.samplers.cluster_memory import ClusterMemory
from cmcgns.samplers.in_batch import info_nce
from cmcgns.plugins import Options, Register, hookimpl


class CMCGNSOptions(Options):
    num_clusters: int = pydantic.Field(128, ge=2, description="K centroids (official 128)")
    cluster_on: Literal["candidates", "anchors"] = pydantic.Field(
        "candidates", description="candidates = the cross-modal features (cm-cgns); anchors = single-modal (cluster-ns)"
    )
    memory: Literal["queue", "official"] = pydantic.Field(
        "queue",
        description="queue = recent rows, k-means++ seeding, spherical k-means refits, idle centroids re-seeded; "
        "official = online EMA of the centroids after a greedy-chain initialisation (collapses on our data)",
    )
    init: Literal["auto", "chain", "kmeans++"] = pydantic.Field(
        "auto", description="seeding: auto = chain for the official memory, k-means++ for the queue"
    )
    init_threshold: float = pydantic.Field(
        0.4, ge=-1.0, le=1.0, description="initialise once mean anchor-candidate cosine <= this (official 0.4)"
    )
    init_warmup_steps: int = pydantic.Field(0, ge=0, description="never initialise before this optimiser step")
    init_pool: int | None = pydantic.Field(
        None,
        ge=2,
        description="rows to seed from: official memory, unset = every row of the initialising batch (whole batches "
        "are pooled until >= num_clusters); queue memory, unset = 4 x num_clusters",
    )
    queue_size: int = pydantic.Field(2048, ge=2, description="queue memory: recent rows kept for seeding and refits")
    refit_every: int = pydantic.Field(10, ge=1, description="queue memory: spherical k-means refit every N steps")
    refit_iterations: int = pydantic.Field(10, ge=1, description="queue memory: Lloyd iterations of a refit")
    refit_backend: Literal["auto", "torch", "faiss"] = pydantic.Field(
        "auto", description="queue memory: k-means library; auto = faiss-cpu for CPU rows, torch on a GPU"
    )
    reseed_idle_after: int = pydantic.Field(
        2, ge=0, description="queue memory: re-seed a centroid with no members for N steps (0 = never)"
    )
    ema_rate: float = pydantic.Field(0.001, gt=0.0, le=1.0, description="centroid moving-average rate (official 0.001)")
    hard_negatives: bool = True
    hard_negative_weight: float = pydantic.Field(3.0, gt=0.0)
    hard_negative_weighting: Literal["logit", "count"] = pydantic.Field(
        "count",
        description="count = cos / T + log(weight) (ClusterNS; measured default); logit = weight x cos / T "
        "(official: at T = 0.1 a close centroid's logit dominates the row)",
    )
    false_negatives: Literal["bml", "mask", "soft", "none"] = "bml"
    false_negative_pairs: Literal["anchors", "anchor-candidate"] = pydantic.Field(
        "anchors",
        description="a flagged pair (a, b): anchors a and b share a cluster (official), or anchor a's cluster "
        "holds candidate b",
    )
    bml_alpha: float = pydantic.Field(0.2, ge=0.0)
    bml_beta: float = pydantic.Field(0.5, ge=0.0)
    bml_weight: float = pydantic.Field(1e-4, ge=0.0)
    soft_weight: float = pydantic.Field(0.5, ge=0.0, le=1.0)
    seed: int = 0

    @pydantic.model_validator(mode="after")
    def _pool(self) -> CMCGNSOptions:
        if self.init_pool is not None and self.init_pool < self.num_clusters:
            raise ValueError(f"init_pool ({self.init_pool}) must be at least num_clusters ({self.num_clusters})")
        if self.memory == "queue" and self.seed_rows > self.queue_size:
            raise ValueError(
                f"queue_size ({self.queue_size}) must hold the {self.seed_rows} rows the memory seeds from "
                "(init_pool, default 4 x num_clusters)"
            )
        return self

    @property
    def seed_rows(self) -> int:
        """Rows the memory needs before it initialises."""
        if self.init_pool is not None:
            return self.init_pool
        return 4 * self.num_clusters if self.memory == "queue" else self.num_clusters

    @property
    def seeding(self) -> str:
        if self.init != "auto":
            return self.init
        return "chain" if self.memory == "official" else "kmeans++"


class ClusterNSOptions(CMCGNSOptions):
    cluster_on: Literal["candidates", "anchors"] = "anchors"


def second_nearest_centroid(anchors: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each anchor [n, E] the index of the centroid with the 2nd-highest cosine (its own
    cluster's centre, the highest, is skipped) and that cosine."""
    to_centroids = anchors @ centroids.t()
    second = to_centroids.topk(2, dim=1).indices[:, 1]
    return second, to_centroids.gather(1, second.unsqueeze(1)).squeeze(1)


def flagged_pairs(anchor_labels: torch.Tensor, candidate_labels: torch.Tensor, rows: slice, how: str) -> torch.Tensor:
    """[n_local, N] True where (local anchor a, column b) is a flagged false negative; never the positive."""
    column_labels = anchor_labels if how == "anchors" else candidate_labels
    same = anchor_labels[rows].unsqueeze(1) == column_labels.unsqueeze(0)
    positives = torch.arange(rows.start, rows.stop, device=same.device)
    return same.scatter(1, positives.unsqueeze(1), False)


@torch.no_grad()
def spread_statistics(candidates: torch.Tensor, groups: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean cosine between candidates of the same report (different rows) and of different reports."""
    cos = candidates @ candidates.t()
    same = groups.unsqueeze(1) == groups.unsqueeze(0)
    off = ~torch.eye(len(groups), dtype=torch.bool, device=cos.device)
    within, across = same & off, ~same
    return {
        "within_image_cos": (cos * within).sum() / within.sum().clamp_min(1),
        "across_image_cos": (cos * across).sum() / across.sum().clamp_min(1),
    }


class CMCGNSSampler(NegativeSampler):
    def __init__(self, options: CMCGNSOptions, embed_dim: int) -> None:
        super().__init__()
        self.options = options
        self.memory = ClusterMemory(options, embed_dim)

    @property
    def ready(self) -> bool:
        return self.memory.ready

    @property
    def centroids(self) -> torch.Tensor:
        return self.memory.centroids

    @property
    def initialized(self) -> torch.Tensor:
        return self.memory.initialized

    # -- loss -----------------------------------------------------------------------------
    def _directional(
        self,
        anchors: torch.Tensor,
        candidates: torch.Tensor,
        anchor_labels: torch.Tensor,
        candidate_labels: torch.Tensor,
        centroids: torch.Tensor,
        problem: ContrastiveProblem,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        opts = self.options
        rows = problem.local_rows
        a = anchors[rows]
        positives = problem.positives
        n_local = a.shape[0]
        arange = torch.arange(n_local, device=a.device)
        cos = a @ candidates.t()  # [n, N]
        logits = cos / problem.temperature
        positive_column = torch.zeros_like(cos, dtype=torch.bool).scatter_(1, positives.unsqueeze(1), True)
        same = flagged_pairs(anchor_labels, candidate_labels, rows, opts.false_negative_pairs)
        stats = {"false_negative_rate": same.float().sum() / max(1, n_local * (candidates.shape[0] - 1))}
        columns = [logits]
        if opts.hard_negatives:
            _, hard_cos = second_nearest_centroid(a, centroids)
            if opts.hard_negative_weighting == "logit":
                hard_logit = opts.hard_negative_weight * hard_cos / problem.temperature
            else:
                hard_logit = hard_cos / problem.temperature + math.log(opts.hard_negative_weight)
            columns.append(hard_logit.unsqueeze(1))
            stats["hard_negative_margin"] = (cos[arange, positives] - hard_cos).detach().mean()
        mode = opts.false_negatives
        if mode == "mask":
            negatives_left = (~same & ~positive_column).sum(1, keepdim=True)
            drop = same & (negatives_left > 0)  # never leave a row without in-batch negatives
            columns[0] = logits.masked_fill(drop, torch.finfo(logits.dtype).min)
        full = torch.cat(columns, dim=1)
        if mode == "soft":
            targets = torch.zeros_like(full)
            targets.scatter_(1, positives.unsqueeze(1), 1.0)
            targets[:, : cos.shape[1]] += opts.soft_weight * same.to(full.dtype)
            loss = -(targets / targets.sum(1, keepdim=True) * F.log_softmax(full, dim=1)).sum(1).mean()
        else:
            loss = F.cross_entropy(full, positives)
        if mode == "bml" and opts.bml_weight > 0:
            delta = cos - cos[arange, positives].unsqueeze(1)
            margin = F.relu(delta + opts.bml_alpha) + F.relu(-delta - opts.bml_beta)
            weight = same.to(margin.dtype)
            bml = (margin * weight).sum() / weight.sum().clamp_min(1.0)
            stats["bml"] = bml.detach()
            loss = loss + opts.bml_weight * bml
        return loss, stats

    def forward(self, problem: ContrastiveProblem) -> SamplerOutput:
        opts = self.options
        anchors, candidates = problem.anchors.float(), problem.candidates.float()
        problem = dataclasses.replace(problem, anchors=anchors, candidates=candidates)
        clustered = (candidates if opts.cluster_on == "candidates" else anchors).detach()
        spread = spread_statistics(candidates.detach(), problem.groups)
        if self.training:
            self.memory.observe(problem, clustered)
        if not self.ready:
            return SamplerOutput(info_nce(problem), {"initialized": anchors.new_zeros(()), **spread})
        centroids = self.memory.centroids.clone()  # snapshot: the update below must not touch the graph
        clustered_labels = kmeans.assign(clustered, centroids)
        other = (anchors if opts.cluster_on == "candidates" else candidates).detach()
        other_labels = kmeans.assign(other, centroids)
        anchor_labels, candidate_labels = (
            (other_labels, clustered_labels) if opts.cluster_on == "candidates" else (clustered_labels, other_labels)
        )
        loss, stats = self._directional(anchors, candidates, anchor_labels, candidate_labels, centroids, problem)
        if problem.symmetric:
            back, _ = self._directional(candidates, anchors, candidate_labels, anchor_labels, centroids, problem)
            loss = 0.5 * (loss + back)
        counts = kmeans.cluster_sizes(clustered_labels, opts.num_clusters)
        stats.update(
            initialized=anchors.new_ones(()),
            clusters_in_use=(counts > 0).sum().float(),
            cluster_entropy=kmeans.entropy(counts),
            **spread,
            **self.memory.health(clustered, clustered_labels, centroids),
        )
        if self.training:
            self.memory.update(problem, clustered, clustered_labels)
        return SamplerOutput(loss, stats)


def build(options: CMCGNSOptions, *, embed_dim: int) -> CMCGNSSampler:
    return CMCGNSSampler(options, embed_dim)


@hookimpl
def register_negative_samplers(register: Register) -> None:
    register(
        "cm-cgns",
        build,
        options=CMCGNSOptions,
        description="cross-modal clustering-guided negatives: a cluster memory of the cross-modal candidates, "
        "2nd-nearest centroid as hard negative, BML on same-cluster pairs (paper)",
    )
    register(
        "cluster-ns",
        build,
        options=ClusterNSOptions,
        description="clustering-guided negatives on the single-modal anchors (single-modal baseline)",
    )
