"""Cross-modal clustering-guided negative sampling (CM-CGNS), and its single-modal baseline.

Paper (abstract, cluster figure) and official code (``Kmeans_Cluster.py``, ``text_local_loss_fn``);
see ``shared/spec/method.md`` section 2.6. For a contrastive problem (at the paper's level: sentence
features f^R as anchors, cross-modal sentence features f^{I->R} as candidates, the whole gathered
batch of sentences):

1. **Memory.** K centroids are persistent state across steps (a dataset-level memory, not a
   per-batch clustering). They are initialised lazily, once the mean anchor-candidate cosine has
   fallen to ``init_threshold`` (official 0.4), by the official greedy chain over rows pooled from
   one or more steps (so K may exceed one batch); afterwards every training step moves each
   centroid with members towards the mean of its assigned rows at ``ema_rate`` (official 0.001).
   Clustering acts on the candidates (``cm-cgns``: the cross-modal features) or on the anchors
   (``cluster-ns``: the single-modal baseline). Rows are gathered over ranks and the update's sums
   are all-reduced, so centroids are identical on every rank; they are buffers, saved in
   checkpoints and resumed bit-identically. Before initialisation the loss is plain InfoNCE.
2. **Hard negatives.** Each anchor is assigned to its most similar centroid; the centroid with the
   2nd-highest cosine (its own cluster's centre skipped) is appended as one extra candidate column,
   with logit ``hard_negative_weight * cos / T`` (official ``logit`` weighting, weight 3) or
   ``cos / T + log(weight)`` (``count``: the column counts ``weight`` times). Unlike the official
   code, other anchors' hard negatives do not leak into a row as constant e^0 terms.
3. **False negatives** are candidates that fall in the anchor's cluster.
   ``bml`` (official): they stay in the denominator and a bidirectional margin term
   mean[ReLU(S_ab - S_aa + alpha) + ReLU(S_aa - S_ab - beta)] over *those pairs only* is added with
   ``bml_weight`` (the official code averages over all N^2 entries, adding a constant);
   ``mask``: removed from the denominator, except in rows where that would remove every negative;
   ``soft``: given ``soft_weight`` of positive target mass; ``none``: ignored.
Statistics (tensors): initialized, clusters_in_use, cluster_entropy, false_negative_rate,
hard_negative_margin (mean cos(anchor, positive) - cos(anchor, hard negative)).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import pydantic
import torch
import torch.nn.functional as F

from cmcgns import distributed as ddp
from cmcgns.samplers import kmeans
from cmcgns.samplers.base import ContrastiveProblem, NegativeSampler, SamplerOutput
from cmcgns.samplers.in_batch import info_nce
from cmcgns.plugins import Options, Register, hookimpl


class CMCGNSOptions(Options):
    num_clusters: int = pydantic.Field(128, ge=2, description="K centroids (official 128)")
    cluster_on: Literal["candidates", "anchors"] = pydantic.Field(
        "candidates", description="candidates = the cross-modal features (cm-cgns); anchors = single-modal (cluster-ns)"
    )
    init_threshold: float = pydantic.Field(
        0.4, ge=-1.0, le=1.0, description="initialise once mean anchor-candidate cosine <= this"
    )
    init_pool: int | None = pydantic.Field(
        None, ge=2, description="rows pooled for initialisation; unset = num_clusters"
    )
    ema_rate: float = pydantic.Field(0.001, gt=0.0, le=1.0, description="centroid moving-average rate (official 0.001)")
    hard_negatives: bool = True
    hard_negative_weight: float = pydantic.Field(3.0, gt=0.0)
    hard_negative_weighting: Literal["logit", "count"] = "logit"
    false_negatives: Literal["bml", "mask", "soft", "none"] = "bml"
    bml_alpha: float = pydantic.Field(0.2, ge=0.0)
    bml_beta: float = pydantic.Field(0.5, ge=0.0)
    bml_weight: float = pydantic.Field(1e-4, ge=0.0)
    soft_weight: float = pydantic.Field(0.5, ge=0.0, le=1.0)
    seed: int = 0

    @pydantic.model_validator(mode="after")
    def _pool(self) -> CMCGNSOptions:
        if self.init_pool is not None and self.init_pool < self.num_clusters:
            raise ValueError(f"init_pool ({self.init_pool}) must be at least num_clusters ({self.num_clusters})")
        return self


class ClusterNSOptions(CMCGNSOptions):
    cluster_on: Literal["candidates", "anchors"] = "anchors"


def second_nearest_centroid(anchors: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each anchor [n, E] the index of the centroid with the 2nd-highest cosine (its own
    cluster's centre, the highest, is skipped) and that cosine."""
    to_centroids = anchors @ centroids.t()
    second = to_centroids.topk(2, dim=1).indices[:, 1]
    return second, to_centroids.gather(1, second.unsqueeze(1)).squeeze(1)


class CMCGNSSampler(NegativeSampler):
    def __init__(self, options: CMCGNSOptions, embed_dim: int) -> None:
        super().__init__()
        self.options = options
        k = options.num_clusters
        pool = options.init_pool or k
        self.register_buffer("centroids", torch.zeros(k, embed_dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("pool", torch.zeros(pool, embed_dim))
        self.register_buffer("pool_count", torch.zeros((), dtype=torch.long))
        self._ready: bool | None = None  # host mirror of `initialized`; read from the buffer once

    def _load_from_state_dict(self, *args, **kwargs):  # a loaded state may change `initialized`
        self._ready = None
        return super()._load_from_state_dict(*args, **kwargs)

    @property
    def ready(self) -> bool:
        if self._ready is None:
            self._ready = bool(self.initialized)
        return self._ready

    # -- memory ---------------------------------------------------------------------------
    @torch.no_grad()
    def _maybe_initialize(self, problem: ContrastiveProblem, clustered: torch.Tensor) -> None:
        """Pool rows while mean cos(anchor, candidate) <= init_threshold; initialise when full.
        The gathered rows are identical on every rank; rank 0's decision and result are broadcast."""
        # mean over all N x N pairs of cos(anchor, candidate) = <mean anchor, mean candidate>
        mean_cos = problem.anchors.detach().float().mean(0) @ problem.candidates.detach().float().mean(0)
        go = ddp.broadcast((mean_cos <= self.options.init_threshold).to(torch.long).reshape(1))
        if not bool(go):
            return
        count, capacity = int(self.pool_count), self.pool.shape[0]
        take = min(capacity - count, clustered.shape[0])
        self.pool[count : count + take] = clustered[:take]
        self.pool_count += take
        if count + take < self.options.num_clusters:
            return
        gen = torch.Generator().manual_seed(self.options.seed)
        rows = self.pool[: count + take].cpu()
        self.centroids.copy_(ddp.broadcast(kmeans.chain_init(rows, self.options.num_clusters, gen).to(self.centroids)))
        self.initialized.fill_(True)
        self.pool.zero_()
        self._ready = True

    @torch.no_grad()
    def _update(self, clustered_local: torch.Tensor, labels_local: torch.Tensor) -> None:
        sums, counts = kmeans.cluster_sums(clustered_local, labels_local, self.options.num_clusters)
        ddp.all_reduce_sum(sums)
        ddp.all_reduce_sum(counts)
        self.centroids.copy_(kmeans.ema_update(self.centroids, sums, counts, self.options.ema_rate))
        self.updates += 1

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
        same = (anchor_labels[rows].unsqueeze(1) == candidate_labels.unsqueeze(0)) & ~positive_column
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
        if not self.ready:
            if self.training:
                self._maybe_initialize(problem, clustered)
            if not self.ready:
                zero = anchors.new_zeros(())
                return SamplerOutput(info_nce(problem), {"initialized": zero})
        centroids = self.centroids.clone()  # snapshot: the update below must not touch the graph
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
        )
        if self.training:
            local = problem.local_rows
            self._update(clustered[local], clustered_labels[local])
        return SamplerOutput(loss, stats)


def build(options: CMCGNSOptions, *, embed_dim: int) -> CMCGNSSampler:
    return CMCGNSSampler(options, embed_dim)


@hookimpl
def register_negative_samplers(register: Register) -> None:
    register(
        "cm-cgns",
        build,
        options=CMCGNSOptions,
        description="cross-modal clustering-guided negatives: persistent centroids of the cross-modal candidates, "
        "2nd-nearest centroid as hard negative, BML on same-cluster pairs (paper)",
    )
    register(
        "cluster-ns",
        build,
        options=ClusterNSOptions,
        description="clustering-guided negatives on the single-modal anchors (single-modal baseline)",
    )
