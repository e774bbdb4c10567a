"""Scoring a sampler's memory against the sentences' recorded meanings: hand-built cases."""

import math

import torch
import torch.nn.functional as F

from cmcgns.training.mechanism import score_memory

A, B, B_OTHER_SIDE = "consolidation:left:present", "effusion:left:present", "effusion:right:present"


def case():
    e = torch.eye(4)
    cross = torch.stack([e[0], e[0], e[1], e[2]])  # clustered rows: clusters [0, 0, 1, 2]; centroid 3 empty
    anchors = F.normalize(
        torch.stack([e[0] + 0.2 * e[1], e[0] + 0.2 * e[2], e[1] + 0.2 * e[2], e[1] + 0.1 * e[2]]), dim=1
    )
    return anchors, cross, [A, A, B, B_OTHER_SIDE], e


def test_scores_equal_a_hand_computation():
    anchors, cross, keys, centroids = case()
    s = score_memory(anchors, cross, keys, centroids)
    assert s["sentences"] == 4 and math.isclose(s["same_meaning_rate"], 2 / 12)
    assert s["clusters_in_use"] == 3 and math.isclose(s["purity"], 1.0)
    # anchors fall in clusters [0, 0, 1, 1]: flagged (0,1), (1,0), (2,3), (3,2); only the first two mean the same
    assert math.isclose(s["flagged_rate"], 4 / 12)
    assert math.isclose(s["false_negative_precision"], 0.5) and math.isclose(s["false_negative_recall"], 1.0)
    # hard negatives (2nd-nearest centroid): 0 -> cluster 1 (B), 1 -> 2 (B'), 2 -> 2 (B', a near miss of B),
    # 3 -> 2 (B', its own meaning)
    assert math.isclose(s["hard_negative_near_miss"], 0.25)
    assert math.isclose(s["hard_negative_same_meaning"], 0.25)
    assert s["hard_negative_empty"] == 0.0


def test_anchor_candidate_pairs_and_unknown_meanings():
    anchors, cross, keys, centroids = case()
    s = score_memory(anchors, cross, keys, centroids, false_negative_pairs="anchor-candidate")
    # anchor clusters [0, 0, 1, 1] against candidate clusters [0, 0, 1, 2]: (0,1), (1,0), (3,2)
    assert math.isclose(s["flagged_rate"], 3 / 12) and math.isclose(s["false_negative_precision"], 2 / 3)
    unknown = score_memory(anchors, cross, [A, A, B, None], centroids)  # a sentence without a meaning is left out
    assert unknown["sentences"] == 3
    plain = score_memory(anchors, cross, keys, None)  # in-batch negatives: no memory to score
    assert set(plain) == {"sentences", "same_meaning_rate"}
