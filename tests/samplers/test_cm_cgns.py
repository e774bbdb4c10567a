import torch
import torch.nn.functional as F

from cmcgns.samplers.base import SamplerInputs
from cmcgns.samplers.cm_cgns import CMCGNSOptions, CMCGNSSampler
from cmcgns.samplers.in_batch import InBatchSampler


def _clustered(n_per=4, k=3, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = F.normalize(torch.randn(k, dim, generator=g), dim=1) * 5
    feats = torch.cat([centers[i] + 0.05 * torch.randn(n_per, dim, generator=g) for i in range(k)])
    return F.normalize(feats, dim=1)


def _inputs(img, txt, cross, step=0):
    return SamplerInputs(img, txt, cross, slice(0, img.shape[0]), 0.1, step)


def test_same_cluster_pairs_are_masked_as_false_negatives():
    feats = _clustered()
    sampler = CMCGNSSampler(CMCGNSOptions(num_clusters=3, backend="torch", hard_negatives=False), 8)
    out = sampler(_inputs(feats, feats, feats))
    # 3 clusters of 4: each anchor has 3 same-cluster partners out of 12 columns
    assert abs(out.stats["false_negative_rate"] - 3 / 12) < 1e-6
    # identical embeddings inside a cluster: plain InfoNCE cannot separate them, masking removes that penalty
    plain = InBatchSampler()(_inputs(feats, feats, feats)).loss
    assert out.loss < plain - 0.5


def test_hard_negative_column_raises_loss_and_comes_from_nearest_other_cluster():
    feats = _clustered()
    base = CMCGNSSampler(CMCGNSOptions(num_clusters=3, backend="torch", hard_negatives=False), 8)
    hard = CMCGNSSampler(CMCGNSOptions(num_clusters=3, backend="torch", hard_negatives=True, hard_negative_weight=4.0), 8)
    a, b = base(_inputs(feats, feats, feats)), hard(_inputs(feats, feats, feats))
    assert b.stats["hard_negative_rate"] == 1.0
    assert b.loss > a.loss


def test_warmup_behaves_like_in_batch_and_centroids_are_state():
    feats = _clustered()
    sampler = CMCGNSSampler(CMCGNSOptions(num_clusters=3, warmup_steps=5, backend="torch"), 8)
    warm = sampler(_inputs(feats, feats, feats, step=0)).loss
    assert torch.allclose(warm, InBatchSampler()(_inputs(feats, feats, feats)).loss)
    assert bool(sampler.initialized) and sampler.centroids.abs().sum() > 0
    clone = CMCGNSSampler(CMCGNSOptions(num_clusters=3, warmup_steps=5, backend="torch"), 8)
    clone.load_state_dict(sampler.state_dict())
    assert torch.equal(clone.centroids, sampler.centroids) and int(clone.updates) == 1


def test_torch_and_faiss_kmeans_recover_the_same_clusters():
    feats = _clustered(n_per=6, k=3, dim=16)
    labels = []
    for backend in ("torch", "faiss"):
        s = CMCGNSSampler(CMCGNSOptions(num_clusters=3, backend=backend, kmeans_iterations=10), 16)
        s(_inputs(feats, feats, feats))
        labels.append((feats @ s.centroids.t()).argmax(1))
    for lab in labels:  # every true cluster maps to exactly one centroid
        assert all(len(set(lab[i * 6:(i + 1) * 6].tolist())) == 1 for i in range(3))
        assert len(set(lab.tolist())) == 3
