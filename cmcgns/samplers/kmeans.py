"""Spherical clustering helpers for the clustering-guided samplers (no host round trips)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the most cosine-similar centroid of each row (rows and centroids unit length)."""
    return (x @ centroids.t()).argmax(dim=1)


def cluster_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster sums of the rows [K, E] and member counts [K]."""
    sums = x.new_zeros(k, x.shape[1]).index_add_(0, labels, x)
    counts = x.new_zeros(k).index_add_(0, labels, torch.ones_like(labels, dtype=x.dtype))
    return sums, counts


def cluster_sizes(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Members per cluster [K] as floats (bincount with minlength would read the maximum label on the host)."""
    return torch.zeros(k, device=labels.device).index_add_(0, labels, torch.ones_like(labels, dtype=torch.float32))


def ema_update(centroids: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor, rate: float) -> torch.Tensor:
    """c_k <- normalise((1 - rate) c_k + rate * mean of cluster k) for clusters with members;
    empty clusters keep their centroid. (The official code adds the cluster *sum*, which makes the
    effective rate grow with the cluster size; a mean keeps `rate` meaningful.)"""
    means = sums / counts.clamp_min(1.0).unsqueeze(1)
    moved = F.normalize((1 - rate) * centroids + rate * means, dim=1)
    return torch.where((counts > 0).unsqueeze(1), moved, centroids)


def chain_init(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """The official greedy chain: a random row first, then repeatedly the not-yet-chosen row least
    similar to the last chosen one. x [N >= k, E] (unit rows) -> centroids [k, E]."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"chain_init needs at least {k} rows, got {n}")
    chosen = torch.zeros(n, dtype=torch.bool, device=x.device)
    order = [int(torch.randint(n, (1,), generator=generator))]
    chosen[order[0]] = True
    for _ in range(1, k):
        sims = (x @ x[order[-1]]).masked_fill(chosen, float("inf"))
        nxt = int(sims.argmin())
        chosen[nxt] = True
        order.append(nxt)
    return x[order].clone()


def entropy(counts: torch.Tensor) -> torch.Tensor:
    """Entropy of the cluster-size distribution normalised to [0, 1] by log K."""
    p = counts / counts.sum().clamp_min(1.0)
    h = -(p * p.clamp_min(1e-12).log()).sum()
    return h / math.log(max(2, counts.numel()))


def reseed(centroids: torch.Tensor, replace: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Centroids with the rows of x [N, E] that fit the current centroids worst (lowest best cosine) put in
    place of the centroids marked `replace` [K] (distinct rows while there are enough). Tensor ops only: no
    host read."""
    best = (x @ centroids.t()).max(dim=1).values
    order = best.argsort()  # worst-fitting rows first
    slot = (replace.long().cumsum(0) - 1).clamp_min(0) % x.shape[0]
    return torch.where(replace.unsqueeze(1), x[order[slot]], centroids)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding for spherical k-means (distance 1 - cos) over unit rows x [N >= k, E]. The uniform
    draws come from the host `generator` up front, so every device and rank picks the same rows."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"kmeans_plus_plus needs at least {k} rows, got {n}")
    draws = torch.rand(k, generator=generator, dtype=torch.float64).to(x.device)
    first = (draws[0] * n).long().clamp_max(n - 1)
    chosen = [first]
    distance = (1 - x @ x[first]).clamp_min(0).double()
    for i in range(1, k):
        cdf = distance.cumsum(0)
        # a zero total (every row already a centre) falls back to the rows in order
        pick = torch.searchsorted(cdf, draws[i] * cdf[-1], right=True).clamp_max(n - 1)
        pick = torch.where(cdf[-1] > 0, pick, torch.tensor(i % n, device=x.device))
        chosen.append(pick)
        distance = torch.minimum(distance, (1 - x @ x[pick]).clamp_min(0).double())
    return x[torch.stack(chosen)].clone()


def spherical_kmeans(x: torch.Tensor, centroids: torch.Tensor, iterations: int) -> torch.Tensor:
    """Lloyd iterations of spherical k-means from `centroids` over unit rows x; a cluster left empty is
    re-seeded with the row that fits its centroid worst (so no centroid ends a refit without members while
    there are at least K rows). Deterministic, tensor ops only."""
    k = centroids.shape[0]
    for _ in range(iterations):
        labels = assign(x, centroids)
        sums, counts = cluster_sums(x, labels, k)
        moved = F.normalize(sums, dim=1)
        centroids = torch.where((counts > 0).unsqueeze(1), moved, centroids)
        centroids = reseed(centroids, counts == 0, x)
    return centroids


def spherical_kmeans_faiss(x: torch.Tensor, centroids: torch.Tensor, iterations: int) -> torch.Tensor:
    """The same fit by faiss-cpu (spherical, every row used, from `centroids`); faiss re-seeds an empty
    cluster by splitting a large one. Host arrays: for rows that already live on the CPU."""
    import faiss

    rows = np.ascontiguousarray(x.detach().float().cpu().numpy())
    start = np.ascontiguousarray(centroids.detach().float().cpu().numpy())
    fit = faiss.Kmeans(rows.shape[1], start.shape[0], niter=iterations, spherical=True, verbose=False, seed=1)
    fit.cp.min_points_per_centroid = 1
    fit.cp.max_points_per_centroid = 1 << 30  # no subsampling
    fit.train(rows, init_centroids=start)
    return F.normalize(torch.from_numpy(fit.centroids).to(centroids), dim=1)


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def refit(x: torch.Tensor, centroids: torch.Tensor, iterations: int, backend: str = "auto") -> torch.Tensor:
    """Spherical k-means from `centroids`: faiss-cpu for rows on the CPU (``auto``, 3x faster there,
    benchmarks/kmeans_refit.py), torch on a GPU (no host round trip) or where faiss is missing."""
    use_faiss = backend == "faiss" or (backend == "auto" and x.device.type == "cpu" and faiss_available())
    if use_faiss:
        return spherical_kmeans_faiss(x, centroids, iterations)
    return spherical_kmeans(x, centroids, iterations)
