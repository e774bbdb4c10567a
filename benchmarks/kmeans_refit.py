"""The cluster memory's refit: our torch spherical k-means beside faiss-cpu's, same rows, same start.

    python benchmarks/kmeans_refit.py [--rows 2048] [--dim 768] [--clusters 128] [--iterations 10] [--repeats 5]

Both run `--iterations` Lloyd iterations of spherical k-means from the same k-means++ seeds on the same unit
rows (the queue at the paper's width); prints the median seconds of each, their ratio, and how many rows the
two final fits assign to the same centroid. This measurement decides whether the memory needs faiss.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cmcgns.samplers import kmeans


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--clusters", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    topics = F.normalize(torch.randn(args.clusters // 2, args.dim, generator=g), dim=1)
    x = F.normalize(
        topics[torch.randint(len(topics), (args.rows,), generator=g)]
        + 0.3 * torch.randn(args.rows, args.dim, generator=g) / args.dim**0.5 * 4,
        dim=1,
    )
    seeds = kmeans.kmeans_plus_plus(x, args.clusters, torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {"torch": [], "faiss": []}
    for _ in range(args.repeats):
        t = time.perf_counter()
        ours = kmeans.spherical_kmeans(x, seeds, args.iterations)
        times["torch"].append(time.perf_counter() - t)
        t = time.perf_counter()
        theirs = kmeans.spherical_kmeans_faiss(x, seeds, args.iterations)
        times["faiss"].append(time.perf_counter() - t)
    a, b = kmeans.assign(x, ours), kmeans.assign(x, theirs)
    agree = float((a == b).float().mean())
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"rows {args.rows} dim {args.dim} K {args.clusters} iterations {args.iterations} threads {torch.get_num_threads()}"
    )
    print(
        f"torch spherical k-means {med['torch'] * 1e3:.1f} ms, faiss-cpu {med['faiss'] * 1e3:.1f} ms, "
        f"faiss / torch {med['faiss'] / med['torch']:.2f}x; same assignment for {agree:.3f} of rows"
    )


if __name__ == "__main__":
    main()
