"""The cluster memory of the clustering-guided samplers: K centroids that persist across steps.

Two memories (``memory`` option):

- ``official`` (``Kmeans_Cluster.py``): lazy initialisation the first time the mean anchor-candidate
  cosine is <= ``init_threshold``, by the greedy chain (a random row, then repeatedly the row least
  similar to the last chosen) over *every* row pooled so far: whole gathered batches are pooled until
  there are at least max(K, ``init_pool``) rows. Afterwards every training step moves each centroid
  that has members towards the mean of its rows at ``ema_rate``; centroids without members never move.
  On our data this memory collapses to one cluster within a few dozen steps.
- ``queue`` (default): a FIFO of the ``queue_size`` most recent clustered rows (every training step,
  from the first). The memory initialises once the official trigger holds, the step is at least
  ``init_warmup_steps`` and the queue holds at least ``init_pool`` rows (default 4 K) from at least K
  reports: k-means++ seeding over the queue, then a spherical k-means fit. Every ``refit_every`` steps
  the centroids are refit to the queue (Lloyd iterations from the current centroids, empty clusters
  re-seeded; faiss-cpu for rows on a CPU, torch on a GPU); between refits the EMA moves them, and a centroid without
  members for ``reseed_idle_after`` steps is re-seeded with one of the step's worst-fitting rows.

The rows are the gathered batch, identical on every rank, and every operation is deterministic, so
every rank holds the same memory; initialisation and refits are also broadcast from rank 0. All state
is in buffers (checkpointed, resumed bit-identically). After initialisation a non-logging step reads
nothing on the host: row counts come from tensor shapes, the rest are tensor ops; before
initialisation the trigger is read once a step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from cmcgns import distributed as ddp
from cmcgns.samplers import kmeans
from cmcgns.samplers.base import ContrastiveProblem

if TYPE_CHECKING:
    from cmcgns.samplers.cm_cgns import CMCGNSOptions


class ClusterMemory(nn.Module):
    def __init__(self, options: CMCGNSOptions, embed_dim: int) -> None:
        super().__init__()
        self.options = options
        k = options.num_clusters
        queue_rows = options.queue_size if options.memory == "queue" else 0
        self.register_buffer("centroids", torch.zeros(k, embed_dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("refits", torch.zeros((), dtype=torch.long))
        self.register_buffer("idle", torch.zeros(k, dtype=torch.long))
        # official memory: the initialisation pool, grown by whole batches (resized on load)
        self.register_buffer("pool", torch.zeros(0, embed_dim))
        # queue memory: a ring of recent rows; `queue_state` = (rows held, next write position, reports seen)
        self.register_buffer("queue", torch.zeros(queue_rows, embed_dim))
        self.register_buffer("queue_state", torch.zeros(3, dtype=torch.long))
        self._ready: bool | None = None  # host mirrors, read from the buffers once after construction/load
        self._queue: list[int] | None = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        pool = state_dict.get(prefix + "pool")
        if pool is not None:  # the pool's length is data-dependent: take the saved one
            self.pool = torch.zeros_like(pool, device=self.pool.device)
        self._ready, self._queue = None, None
        return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def ready(self) -> bool:
        if self._ready is None:
            self._ready = bool(self.initialized)
        return self._ready

    @property
    def _queue_host(self) -> list[int]:
        if self._queue is None:
            self._queue = [int(v) for v in self.queue_state.tolist()]
        return self._queue

    @property
    def queue_rows(self) -> torch.Tensor:
        """The rows the queue holds now (oldest first is not guaranteed: a ring)."""
        return self.queue[: self._queue_host[0]]

    # -- observing a training step ----------------------------------------------------------------
    @torch.no_grad()
    def observe(self, problem: ContrastiveProblem, clustered: torch.Tensor) -> None:
        """Take a training step's rows (before its loss): queue them, and initialise when due."""
        if self.options.memory == "queue":
            self._push(clustered, problem.groups)
        if not self.ready and self._triggered(problem):
            self._initialize(clustered, problem.step)

    def _push(self, rows: torch.Tensor, groups: torch.Tensor) -> None:
        capacity = self.queue.shape[0]
        held, position, reports = self._queue_host
        rows = rows[-capacity:]
        n = rows.shape[0]
        index = (position + torch.arange(n, device=rows.device)) % capacity
        self.queue.index_copy_(0, index, rows.to(self.queue.dtype))
        held, position = min(capacity, held + n), (position + n) % capacity
        if not self.ready:  # only initialisation asks how many reports the queue has seen (one host read)
            reports += int((groups[1:] != groups[:-1]).sum()) + 1 if n else 0
        self._queue = [held, position, reports]
        for i, value in enumerate(self._queue):  # fill_ with a host scalar: no copy from pageable memory
            self.queue_state[i].fill_(value)

    def _triggered(self, problem: ContrastiveProblem) -> bool:
        opts = self.options
        if problem.step < opts.init_warmup_steps:
            return False
        # mean over all N x N pairs of cos(anchor, candidate) = <mean anchor, mean candidate>
        mean_cos = problem.anchors.detach().float().mean(0) @ problem.candidates.detach().float().mean(0)
        go = ddp.broadcast((mean_cos <= opts.init_threshold).to(torch.long).reshape(1))
        if not bool(go):
            return False
        if opts.memory == "queue":
            held, _, reports = self._queue_host
            return held >= opts.seed_rows and reports >= opts.num_clusters
        return True

    def _initialize(self, clustered: torch.Tensor, step: int) -> None:
        opts = self.options
        if opts.memory == "queue":
            rows = self.queue_rows
        else:  # pool whole batches until there are enough rows, then seed from all of them
            self.pool = torch.cat([self.pool, clustered.to(self.pool.dtype)])
            if self.pool.shape[0] < opts.seed_rows:
                return
            rows = self.pool
        generator = torch.Generator().manual_seed(opts.seed * 1_000_003 + step)
        if opts.seeding == "chain":
            seeds = kmeans.chain_init(rows.cpu(), opts.num_clusters, generator).to(rows)
        else:
            seeds = kmeans.kmeans_plus_plus(rows, opts.num_clusters, generator)
        if opts.memory == "queue":
            seeds = kmeans.refit(rows, seeds, opts.refit_iterations, opts.refit_backend)
        self.centroids.copy_(ddp.broadcast(seeds.to(self.centroids)))
        self.initialized.fill_(True)
        self.pool = self.pool[:0]
        self._ready = True

    # -- after the loss -------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, problem: ContrastiveProblem, clustered: torch.Tensor, labels: torch.Tensor) -> None:
        """Move the centroids after a training step's loss (rows and labels of the whole gathered batch)."""
        opts = self.options
        local = problem.local_rows
        sums, counts = kmeans.cluster_sums(clustered[local], labels[local], opts.num_clusters)
        ddp.all_reduce_sum(sums)
        ddp.all_reduce_sum(counts)
        centroids = kmeans.ema_update(self.centroids, sums, counts, opts.ema_rate)
        if opts.memory == "queue":
            if opts.reseed_idle_after:
                self.idle.copy_(torch.where(counts > 0, torch.zeros_like(self.idle), self.idle + 1))
                dead = self.idle >= opts.reseed_idle_after
                centroids = kmeans.reseed(centroids, dead, clustered)
                self.idle.masked_fill_(dead, 0)
            if (problem.step + 1) % opts.refit_every == 0:
                centroids = ddp.broadcast(
                    kmeans.refit(self.queue_rows, centroids, opts.refit_iterations, opts.refit_backend)
                )
                self.refits += 1
        self.centroids.copy_(centroids)
        self.updates += 1

    @torch.no_grad()
    def health(self, rows: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> dict[str, torch.Tensor]:
        """How well the memory fits the rows: mean cos of a row to its centroid, and between centroids."""
        k = centroids.shape[0]
        between = centroids @ centroids.t()
        return {
            "row_to_centroid_cos": (rows * centroids[labels]).sum(1).mean(),
            "centroid_cos": (between.sum() - between.diagonal().sum()) / (k * (k - 1)),
        }
