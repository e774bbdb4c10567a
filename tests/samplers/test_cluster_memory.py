"""The cluster memory: initialisation over every pooled row, the official false-negative pairs, a memory
that follows drifting features, and its state across checkpoints."""

import torch
import torch.nn.functional as F

from cmcgns.samplers import kmeans
from cmcgns.samplers.base import ContrastiveProblem
from cmcgns.samplers.cm_cgns import CMCGNSOptions, CMCGNSSampler, flagged_pairs


def topics(n_topics=8, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n_topics, dim, generator=g), dim=1), g


def skewed_batch(n=128, n_topics=8, dim=16, seed=0):
    """Half of the rows on topic 0, the rest spread over the other topics; rows shuffled."""
    centers, g = topics(n_topics, dim, seed)
    labels = torch.cat([torch.zeros(n // 2, dtype=torch.long), 1 + torch.arange(n - n // 2) % (n_topics - 1)])
    labels = labels[torch.randperm(n, generator=g)]
    return F.normalize(centers[labels] + 0.05 * torch.randn(n, dim, generator=g), dim=1), centers


def problem(anchors, candidates, step=0, groups=None):
    n = anchors.shape[0]
    groups = torch.arange(n) // 4 if groups is None else groups
    return ContrastiveProblem(anchors, candidates, groups, slice(0, n), 1.0, step)


def centroids_on_topic_zero(sampler, centers):
    return int((kmeans.assign(sampler.centroids, centers) == 0).sum())


def test_official_chain_seeds_from_every_row_of_the_batch():
    x, centers = skewed_batch()
    s = CMCGNSSampler(CMCGNSOptions(num_clusters=16, memory="official", init_threshold=1.0), 16)
    s(problem(x, x))
    assert s.ready
    best = s.centroids @ x.t()  # each centroid is a row of the batch (moved by one EMA step at rate 0.001)
    assert (best.max(1).values > 0.999).all()
    picked = best.argmax(1).tolist()
    assert len(set(picked)) == 16 and max(picked) >= 16  # chained over all 128 rows, not the first K
    assert len(set(kmeans.assign(s.centroids, centers).tolist())) >= 3


def test_queue_memory_seeds_by_kmeans_plus_plus_over_the_queue():
    x, centers = skewed_batch()
    s = CMCGNSSampler(CMCGNSOptions(num_clusters=16, init_threshold=1.0, init_pool=64), 16)
    s(problem(x[:32], x[:32]))  # 32 rows queued: fewer than init_pool
    assert not s.ready
    s(problem(x[32:], x[32:]))
    assert s.ready
    assert len(set(kmeans.assign(s.centroids, centers).tolist())) == 8
    assert centroids_on_topic_zero(s, centers) <= 10  # a fit, not 16 copies of the big topic


def test_queue_memory_waits_for_enough_reports():
    x, _ = skewed_batch(n=64)
    s = CMCGNSSampler(CMCGNSOptions(num_clusters=8, init_threshold=1.0, init_pool=32), 16)
    s(problem(x, x, groups=torch.zeros(64, dtype=torch.long)))  # 64 rows but from one report
    assert not s.ready
    s(problem(x, x, groups=torch.arange(64) // 8))  # 8 more reports: 9 >= K
    assert s.ready


def test_false_negative_pairs_follow_the_official_definition():
    e = torch.eye(4)
    centroids = e[:2]
    # anchors fall in clusters [0, 0, 1, 1]; candidates in [0, 1, 1, 0]
    anchors = F.normalize(torch.stack([e[0], e[0] + 0.1 * e[2], e[1], e[1] + 0.1 * e[3]]), dim=1)
    candidates = F.normalize(torch.stack([e[0], e[1] + 0.1 * e[2], e[1] + 0.2 * e[3], e[0] + 0.3 * e[2]]), dim=1)
    a_lab, c_lab = kmeans.assign(anchors, centroids), kmeans.assign(candidates, centroids)
    assert a_lab.tolist() == [0, 0, 1, 1] and c_lab.tolist() == [0, 1, 1, 0]
    official = {(0, 1), (1, 0), (2, 3), (3, 2)}
    ours = {(0, 3), (1, 0), (1, 3), (2, 1), (3, 1), (3, 2)}
    for how, expected in (("anchors", official), ("anchor-candidate", ours)):
        flagged = flagged_pairs(a_lab, c_lab, slice(0, 4), how)
        assert {tuple(p) for p in flagged.nonzero().tolist()} == expected
    # the sampler uses the official pairs by default: mask mode removes exactly them from the denominator
    s = CMCGNSSampler(CMCGNSOptions(num_clusters=2, memory="official", false_negatives="mask", hard_negatives=False), 4)
    s.memory.centroids.copy_(centroids)
    s.memory.initialized.fill_(True)
    out = s(problem(anchors, candidates))
    logits = anchors @ candidates.t()
    for a, b in official:
        logits[a, b] = torch.finfo(logits.dtype).min
    assert torch.allclose(out.loss, F.cross_entropy(logits, torch.arange(4)), atol=1e-6)
    assert abs(float(out.stats["false_negative_rate"]) - 4 / 12) < 1e-6


def drifting_run(memory, steps=150, k=8, n_topics=6, dim=16, n=60, seed=0, **options):
    """Six topics whose features drift into one narrow cone (as the cross-modal features do early in
    training); returns clusters in use per step."""
    centers, g = topics(n_topics, dim, seed)
    common = F.normalize(torch.randn(dim, generator=g), dim=0)
    s = CMCGNSSampler(CMCGNSOptions(num_clusters=k, memory=memory, ema_rate=0.01, **options), dim)
    used = []
    for step in range(steps):
        a = min(0.95, step / 40)
        t = torch.randint(n_topics, (n,), generator=g)
        x = F.normalize((1 - a) * centers[t] + a * common + 0.05 * torch.randn(n, dim, generator=g), dim=1)
        y = F.normalize(x + 0.05 * torch.randn(n, dim, generator=g), dim=1)
        out = s(problem(y, x, step=step, groups=torch.arange(n) // 3))
        if "clusters_in_use" in out.stats:
            used.append(int(out.stats["clusters_in_use"]))
    return used


def test_queue_memory_follows_drifting_features_and_never_ends_with_one_cluster():
    used = drifting_run("queue", queue_size=600)
    assert used[-1] >= 6 and min(used[len(used) // 2 :]) >= 6
    official = drifting_run("official")
    assert official[-1] < used[-1]  # the official EMA loses clusters on the same stream


def test_spherical_kmeans_reseeds_empty_clusters():
    x, centers = skewed_batch()
    start = torch.stack([centers[0]] * 8)  # eight copies of one centroid: seven would stay empty
    fitted = kmeans.spherical_kmeans(x, start, 5)
    counts = kmeans.cluster_sizes(kmeans.assign(x, fitted), 8)
    assert (counts > 0).all()


def test_kmeans_plus_plus_is_deterministic_for_a_seed():
    x, _ = skewed_batch()
    a = kmeans.kmeans_plus_plus(x, 8, torch.Generator().manual_seed(3))
    b = kmeans.kmeans_plus_plus(x, 8, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and len({tuple(r.tolist()) for r in a}) == 8


def test_memory_state_resumes_bit_identically_mid_pool_and_mid_queue():
    def stream(seed):
        g = torch.Generator().manual_seed(seed)
        for step in range(30):
            x = F.normalize(torch.randn(24, 16, generator=g), dim=1)
            yield step, problem(x, F.normalize(x + 0.1 * torch.randn(24, 16, generator=g), dim=1), step)

    for memory, options in (("queue", dict(queue_size=100, init_pool=64, refit_every=4)), ("official", {})):
        opts = CMCGNSOptions(num_clusters=32, memory=memory, init_threshold=1.0, **options)
        full = CMCGNSSampler(opts, 16)
        resumed = None
        for step, p in stream(0):
            if step == 1:  # official: 24 of 32 rows pooled; queue: 48 of 64 rows queued
                resumed = CMCGNSSampler(opts, 16)
                resumed.load_state_dict(full.state_dict())
                assert not resumed.ready
            out = full(p)
            if resumed is not None:
                assert torch.equal(resumed(p).loss, out.loss), (memory, step)
        assert full.ready and torch.equal(resumed.centroids, full.centroids)
        assert torch.equal(resumed.state_dict()["memory.queue"], full.state_dict()["memory.queue"])


def test_faiss_and_torch_refits_give_the_same_assignments():
    x, _ = skewed_batch(n=512)
    seeds = kmeans.kmeans_plus_plus(x, 8, torch.Generator().manual_seed(0))
    ours = kmeans.refit(x, seeds, 10, "torch")
    theirs = kmeans.refit(x, seeds, 10, "faiss")
    assert float((kmeans.assign(x, ours) == kmeans.assign(x, theirs)).float().mean()) > 0.99
    assert torch.equal(kmeans.refit(x, seeds, 10, "faiss"), theirs)  # deterministic: resume and ranks agree
