"""Scores a clustering-guided sampler's memory against what the sentences mean.

The synthetic generator records a semantic key per sentence (``finding:side:polarity``, carried into
the manifest's sentences as ``meaning``; the model never reads it). Over a held-out split this module
computes, for a trained model and its sampler's centroids:

- ``clusters_in_use``, ``cluster_entropy`` (normalised to [0, 1]), ``purity`` and ``nmi`` of the
  clustered features (f^{I->R} for cm-cgns, f^R for cluster-ns) against the keys;
- ``false_negative_precision``: of the sentence pairs the sampler flags as false negatives, the share
  that really mean the same; ``false_negative_recall``: of the same-meaning pairs, the share flagged;
  ``same_meaning_rate``: the share of all pairs that mean the same (the precision of flagging at random,
  and the false-negative rate plain in-batch negatives live with);
- ``hard_negative_same_meaning``: how often an anchor's hard negative (its 2nd-nearest centroid) is a
  cluster whose majority meaning is the anchor's own (a false hard negative);
  ``hard_negative_near_miss``: how often it is the same finding and polarity on another side (the
  laterality hard negative radiology is full of); ``hard_negative_empty``: how often it is a centroid
  with no held-out member.
"""

from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn.functional as F

from cmcgns.samplers import kmeans
from cmcgns.samplers.cm_cgns import flagged_pairs, second_nearest_centroid

SIDES = {"left", "right", "bilateral"}


@torch.no_grad()
def sentence_features(model, loader, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str | None]]:
    """Per valid sentence of the split: f^R (normalised), f^{I->R} (normalised), report index, meaning."""
    model.eval()
    dataset = loader.dataset
    anchors, cross, groups, keys = [], [], [], []
    for batch in loader:
        feats = model.encode({k: v.to(device) for k, v in batch.items()})
        mask = feats.sentence_mask.cpu()
        anchors.append(F.normalize(feats.sentences.float(), dim=-1).cpu()[mask])
        cross.append(F.normalize(feats.image_to_report.float(), dim=-1).cpu()[mask])
        for row_index, valid in zip(batch["index"].tolist(), mask):
            sentences = sorted(dataset.rows[row_index]["sentences"], key=lambda s: s["index"])
            for j in valid.nonzero().squeeze(1).tolist():
                keys.append(sentences[j].get("meaning"))
                groups.append(row_index)
    model.train()
    return torch.cat(anchors), torch.cat(cross), torch.tensor(groups), keys


def _side_swapped(a: str, b: str) -> bool:
    fa, sa, pa = a.split(":")
    fb, sb, pb = b.split(":")
    return fa == fb and pa == pb and sa != sb and sa in SIDES and sb in SIDES


def _nmi(labels: list[int], keys: list[str]) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(keys, labels))


def score_memory(
    anchors: torch.Tensor,
    cross: torch.Tensor,
    keys: list[str | None],
    centroids: torch.Tensor | None,
    cluster_on: str = "candidates",
    false_negative_pairs: str = "anchors",
) -> dict[str, float]:
    """The statistics of the module docstring; sentences without a meaning are left out. Without
    centroids (in-batch negatives) only ``same_meaning_rate`` and ``sentences``."""
    known = [i for i, k in enumerate(keys) if k is not None]
    anchors, cross = anchors[known], cross[known]
    keys_known = [keys[i] for i in known]
    n = len(keys_known)
    key_ids = {k: i for i, k in enumerate(sorted(set(keys_known)))}
    key_tensor = torch.tensor([key_ids[k] for k in keys_known])
    same = key_tensor.unsqueeze(0) == key_tensor.unsqueeze(1)
    off = ~torch.eye(n, dtype=torch.bool)
    pairs = max(1, n * (n - 1))
    out: dict[str, float] = {"sentences": float(n), "same_meaning_rate": float((same & off).sum()) / pairs}
    if centroids is None or n == 0:
        return out
    centroids = F.normalize(centroids.float().cpu(), dim=1)
    clustered = cross if cluster_on == "candidates" else anchors
    labels = kmeans.assign(clustered, centroids)
    k = centroids.shape[0]
    counts = kmeans.cluster_sizes(labels, k)
    members: dict[int, Counter] = {}
    for label, key in zip(labels.tolist(), keys_known):
        members.setdefault(label, Counter())[key] += 1
    anchor_labels = kmeans.assign(anchors, centroids)
    candidate_labels = labels if cluster_on == "candidates" else kmeans.assign(cross, centroids)
    flagged = flagged_pairs(anchor_labels, candidate_labels, slice(0, n), false_negative_pairs)
    hits = float((flagged & same).sum())
    majority = {label: c.most_common(1)[0][0] for label, c in members.items()}
    hard = second_nearest_centroid(anchors, centroids)[0].tolist()
    hard_keys = [majority.get(h) for h in hard]
    out.update(
        clusters_in_use=float((counts > 0).sum()),
        cluster_entropy=float(kmeans.entropy(counts)),
        purity=sum(c.most_common(1)[0][1] for c in members.values()) / n,
        nmi=_nmi(labels.tolist(), keys_known),
        flagged_rate=float(flagged.sum()) / pairs,
        false_negative_precision=hits / float(flagged.sum()) if flagged.any() else math.nan,
        false_negative_recall=hits / float((same & off).sum()) if (same & off).any() else math.nan,
        hard_negative_same_meaning=sum(h == a for h, a in zip(hard_keys, keys_known)) / n,
        hard_negative_near_miss=sum(h is not None and _side_swapped(a, h) for h, a in zip(hard_keys, keys_known)) / n,
        hard_negative_empty=sum(h is None for h in hard_keys) / n,
    )
    return out
