"""Spherical k-means: vectorised torch (rank-synchronised through all-reduce) or faiss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cmcgns.training import distributed as ddp


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def assign(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return (x @ centroids.t()).argmax(dim=1)


def cluster_stats(x: torch.Tensor, labels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    sums = x.new_zeros(k, x.shape[1]).index_add_(0, labels, x)
    counts = torch.bincount(labels, minlength=k).to(x.dtype)
    return sums, counts


def kmeans_torch(x: torch.Tensor, centroids: torch.Tensor, iterations: int) -> torch.Tensor:
    """Lloyd iterations from `centroids`; sums/counts are all-reduced so every rank ends with
    identical centroids while clustering only its own shard. Empty clusters keep their centroid."""
    x = F.normalize(x.float(), dim=1)
    c = centroids.float().clone()
    for _ in range(iterations):
        sums, counts = cluster_stats(x, assign(x, c), c.shape[0])
        ddp.all_reduce_sum(sums)
        ddp.all_reduce_sum(counts)
        updated = F.normalize(sums / counts.clamp_min(1.0).unsqueeze(1), dim=1)
        c = torch.where((counts > 0).unsqueeze(1), updated, c)
    return c


def kmeans_faiss(x: torch.Tensor, centroids: torch.Tensor, iterations: int, seed: int) -> torch.Tensor:
    import faiss
    import numpy as np

    data = np.ascontiguousarray(F.normalize(x.float(), dim=1).detach().cpu().numpy())
    k, d = centroids.shape
    km = faiss.Kmeans(d, k, niter=iterations, spherical=True, seed=seed, verbose=False, min_points_per_centroid=1)
    km.train(data, init_centroids=np.ascontiguousarray(centroids.float().cpu().numpy()))
    return torch.from_numpy(km.centroids.copy()).to(centroids.device)


def init_centroids(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding on rank 0's view, broadcast to all ranks."""
    x = F.normalize(x.float(), dim=1)
    chosen = [int(torch.randint(x.shape[0], (1,), generator=generator))]
    for _ in range(1, k):
        dist = (1 - (x @ x[chosen].t()).max(dim=1).values).clamp_min(0)
        if float(dist.sum()) <= 0:
            chosen.append(int(torch.randint(x.shape[0], (1,), generator=generator)))
        else:
            chosen.append(int(torch.multinomial(dist.cpu(), 1, generator=generator)))
    return ddp.broadcast(x[chosen].clone().contiguous())
