"""CM-CGNS sampler behaviour: memory, hard negatives, false negatives, statistics."""

import math

import pytest
import torch
import torch.nn.functional as F

from cmcgns.samplers import kmeans
from cmcgns.samplers.base import ContrastiveProblem
from cmcgns.samplers.cm_cgns import ClusterNSOptions, CMCGNSOptions, CMCGNSSampler, second_nearest_centroid
from cmcgns.samplers.in_batch import InBatchSampler, info_nce


def problem(anchors, candidates, step=0, temperature=1.0, rows=None, symmetric=False):
    n = anchors.shape[0]
    return ContrastiveProblem(
        anchors, candidates, torch.arange(n) // 2, rows or slice(0, n), temperature, step, symmetric
    )


def clustered(n_per=4, k=3, dim=8, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = F.normalize(torch.randn(k, dim, generator=g), dim=1)
    feats = torch.cat([centers[i] + noise * torch.randn(n_per, dim, generator=g) for i in range(k)])
    return F.normalize(feats, dim=1), centers


def ready_sampler(centers, options_class=CMCGNSOptions, **options):
    opts = dict(num_clusters=centers.shape[0], init_threshold=1.0, memory="official")
    opts.update(options)
    s = CMCGNSSampler(options_class(**opts), centers.shape[1])
    s.memory.centroids.copy_(centers)
    s.memory.initialized.fill_(True)
    return s


@pytest.mark.parametrize("mode", ["bml", "mask", "soft", "none"])
def test_loss_is_never_zero_on_identical_features(mode):
    torch.manual_seed(0)
    x = F.normalize(torch.ones(12, 8), dim=1)
    s = CMCGNSSampler(CMCGNSOptions(num_clusters=3, init_threshold=1.0, false_negatives=mode, init_pool=3), 8)
    s(problem(F.normalize(torch.randn(12, 8), dim=1), x))  # initialise the memory
    assert bool(s.initialized)
    out = s(problem(x, x))
    assert torch.isfinite(out.loss) and out.loss > math.log(12) - 1e-4  # nothing removes the negatives


def test_mask_mode_removes_same_cluster_negatives_but_never_all():
    feats, centers = clustered()
    plain = info_nce(problem(feats, feats))
    masked = ready_sampler(centers, false_negatives="mask", hard_negatives=False)(problem(feats, feats)).loss
    assert masked < plain - 0.1  # genuine same-cluster negatives were removed
    # one centroid takes every row: masking would leave no negative, so nothing is masked
    mean = F.normalize(feats.mean(0), dim=0)
    one = ready_sampler(
        torch.stack([mean, -mean, F.normalize(torch.randn(8), dim=0)]), false_negatives="mask", hard_negatives=False
    )
    assert torch.allclose(one(problem(feats, feats)).loss, plain, atol=1e-6)


def test_bml_acts_only_on_same_cluster_pairs():
    feats, centers = clustered()
    p = problem(feats, feats)
    out = ready_sampler(centers, hard_negatives=False, bml_weight=1.0)(p)
    labels = kmeans.assign(feats, centers)
    same = (labels[:, None] == labels[None, :]) & ~torch.eye(12, dtype=torch.bool)

    def bml(anchors, candidates):
        cos = anchors @ candidates.t()
        delta = cos - cos.diag()[:, None]
        return (F.relu(delta + 0.2) + F.relu(-delta - 0.5))[same].mean()

    assert torch.allclose(out.stats["bml"], bml(feats, feats), atol=1e-6)
    assert torch.allclose(
        out.loss, info_nce(p) + bml(feats, feats), atol=1e-5
    )  # same-cluster pairs stay in the denominator
    moved = feats.clone()  # move a candidate that is a different-cluster negative of rows 0-3
    moved[11] = F.normalize(moved[11] + 0.2 * moved[0], dim=0)
    assert torch.equal(kmeans.assign(moved, centers), labels)
    out2 = ready_sampler(centers, hard_negatives=False, bml_weight=1.0)(problem(feats, moved))
    assert torch.allclose(out2.stats["bml"], bml(feats, moved), atol=1e-6)


def test_hard_negative_is_the_second_nearest_centroid_with_logit_weight():
    feats, centers = clustered()
    out = ready_sampler(centers, false_negatives="none", hard_negative_weight=3.0, hard_negative_weighting="logit")(
        problem(feats, feats, temperature=0.5)
    )
    idx, hard_cos = second_nearest_centroid(feats, centers)
    assert (idx != kmeans.assign(feats, centers)).all()  # never the anchor's own centre
    assert torch.allclose(hard_cos, (feats * centers[idx]).sum(1))
    sims = (feats @ centers.t()).sort(dim=1, descending=True).values
    assert torch.allclose(hard_cos, sims[:, 1])
    logits = torch.cat([feats @ feats.t() / 0.5, (3.0 * hard_cos / 0.5).unsqueeze(1)], dim=1)
    assert torch.allclose(out.loss, F.cross_entropy(logits, torch.arange(12)), atol=1e-6)
    count = ready_sampler(centers, false_negatives="none", hard_negative_weight=3.0, hard_negative_weighting="count")
    logits_c = torch.cat([feats @ feats.t() / 0.5, (hard_cos / 0.5 + math.log(3.0)).unsqueeze(1)], dim=1)
    assert torch.allclose(
        count(problem(feats, feats, temperature=0.5)).loss, F.cross_entropy(logits_c, torch.arange(12)), atol=1e-6
    )


def test_lazy_initialisation_waits_for_the_threshold_and_pools_whole_batches():
    torch.manual_seed(0)
    close = F.normalize(torch.ones(6, 8) + 0.01 * torch.randn(6, 8), dim=1)  # mean cosine ~1 > 0.4
    s = CMCGNSSampler(CMCGNSOptions(num_clusters=8, init_threshold=0.4, memory="official"), 8)
    out = s(problem(close, close))
    assert not bool(s.initialized) and s.memory.pool.shape[0] == 0
    assert torch.allclose(out.loss, InBatchSampler()(problem(close, close)).loss)
    spread = F.normalize(torch.randn(6, 8), dim=1)
    s(problem(spread, spread))  # 6 rows pooled: fewer than K = 8
    assert not bool(s.initialized) and s.memory.pool.shape[0] == 6
    second = F.normalize(torch.randn(6, 8), dim=1)
    s(problem(spread.flip(0), second))
    assert bool(s.initialized) and s.ready and s.memory.pool.shape[0] == 0
    assert torch.allclose(s.centroids.norm(dim=1), torch.ones(8))
    assert len({tuple(c.tolist()) for c in s.centroids}) == 8  # the chain picks distinct rows


def test_ema_update_moves_assigned_centroids_by_the_rate_and_keeps_empty_ones():
    feats, centers = clustered(k=3)
    far = -F.normalize(feats.mean(0), dim=0)
    all_centers = torch.cat([centers, far.unsqueeze(0)])
    s = ready_sampler(all_centers, ema_rate=0.1)
    s(problem(feats, feats))
    labels = kmeans.assign(feats, all_centers)
    assert not (labels == 3).any()
    for k in range(3):
        mean = feats[labels == k].mean(0)
        assert torch.allclose(s.centroids[k], F.normalize(0.9 * all_centers[k] + 0.1 * mean, dim=0), atol=1e-6)
    assert torch.equal(s.centroids[3], all_centers[3])  # no members: unchanged
    s.eval()
    before = s.centroids.clone()
    s(problem(feats, feats))
    assert torch.equal(s.centroids, before)  # evaluation never moves the memory


def test_cluster_ns_clusters_the_anchors_and_cm_cgns_the_candidates():
    anchors, centers = clustered(seed=1)
    candidates = F.normalize(torch.randn(12, 8, generator=torch.Generator().manual_seed(5)), dim=1)
    cm = ready_sampler(centers, ema_rate=1.0)
    ns = ready_sampler(centers, ClusterNSOptions, ema_rate=1.0)
    cm(problem(anchors, candidates))
    ns(problem(anchors, candidates))

    def means(x):
        labels = kmeans.assign(x, centers)
        return torch.stack(
            [F.normalize(x[labels == k].mean(0), dim=0) if (labels == k).any() else centers[k] for k in range(3)]
        )

    assert torch.allclose(cm.centroids, means(candidates), atol=1e-5)
    assert torch.allclose(ns.centroids, means(anchors), atol=1e-5)


def test_statistics_are_tensors_and_describe_the_clusters():
    feats, centers = clustered()
    out = ready_sampler(centers)(problem(feats, feats))
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in out.stats.values())
    assert out.stats["clusters_in_use"] == 3
    assert abs(float(out.stats["cluster_entropy"]) - 1.0) < 1e-6  # three equal clusters
    assert abs(float(out.stats["false_negative_rate"]) - 3 / 11) < 1e-6  # 3 of 11 negatives share the cluster
    assert out.stats["hard_negative_margin"] > 0


def test_symmetric_problem_averages_both_directions():
    feats, centers = clustered()
    other = F.normalize(feats + 0.1 * torch.randn(12, 8, generator=torch.Generator().manual_seed(3)), dim=1)
    one_way = ready_sampler(centers, ema_rate=1e-9)(problem(feats, other)).loss
    back = ready_sampler(centers, ema_rate=1e-9)(problem(other, feats)).loss
    both = ready_sampler(centers, ema_rate=1e-9)(problem(feats, other, symmetric=True)).loss
    assert torch.allclose(both, 0.5 * (one_way + back), atol=1e-5)


def test_state_round_trip_restores_memory():
    feats, centers = clustered()
    s = ready_sampler(centers, ema_rate=0.5)
    s(problem(feats, feats))
    clone = CMCGNSSampler(CMCGNSOptions(num_clusters=3, init_threshold=1.0, ema_rate=0.5, memory="official"), 8)
    clone.load_state_dict(s.state_dict())
    assert clone.ready and torch.equal(clone.centroids, s.centroids)
    assert torch.equal(clone(problem(feats, feats)).loss, s(problem(feats, feats)).loss)
