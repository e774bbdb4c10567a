"""Image-report retrieval scored from a similarity matrix whose diagonal holds the true pairs.

A true item's rank counts every candidate scoring at least as high as it (ties ranked against the
true item): a model that gives every pair the same score ranks each true item last, never first.
"""

from __future__ import annotations

import numpy as np


def true_ranks(similarity: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of the diagonal entry in each row of a square similarity matrix."""
    sims = np.asarray(similarity, dtype=np.float64)
    if sims.ndim != 2 or sims.shape[0] != sims.shape[1]:
        raise ValueError(f"similarity must be square, got {sims.shape}")
    true = np.diag(sims)[:, None]
    return (sims >= true).sum(1)


def retrieval_scores(similarity: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Image->report (rows are images) and report->image Recall@k and median rank, with the chance
    level of Recall@1 (1 / candidates)."""
    out: dict[str, float] = {"candidates": float(similarity.shape[0])}
    for prefix, matrix in (("i2t", similarity), ("t2i", np.asarray(similarity).T)):
        ranks = true_ranks(matrix)
        for k in ks:
            out[f"{prefix}_r{k}"] = float((ranks <= k).mean())
        out[f"{prefix}_median_rank"] = float(np.median(ranks))
    out["chance_r1"] = 1.0 / similarity.shape[0]
    return out
