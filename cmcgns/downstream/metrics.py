"""Downstream metrics of the MGCA protocol, as plain functions (tested against hand computations):
per-image Dice for segmentation and mean average precision over IoU 0.40, 0.45, ..., 0.75 for
detection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MGCA_IOU_THRESHOLDS = tuple(round(0.40 + 0.05 * k, 2) for k in range(8))  # 0.40 ... 0.75


def dice_per_image(prediction: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> float:
    """Dice of one image's foreground at `threshold`; an empty target scores 1 when the prediction
    is empty too, else 0."""
    pred = np.asarray(prediction) > threshold
    true = np.asarray(target) > 0.5
    if not true.any():
        return 1.0 if not pred.any() else 0.0
    return float(2.0 * (pred & true).sum() / (pred.sum() + true.sum()))


def mean_dice(predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray], threshold: float = 0.5) -> float:
    """Mean of the per-image Dice (not the Dice of all pixels pooled)."""
    scores = [dice_per_image(p, t, threshold) for p, t in zip(predictions, targets, strict=True)]
    return float(np.mean(scores)) if scores else float("nan")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes in [x, y, w, h]."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def average_precision(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]], targets: Sequence[np.ndarray], iou_threshold: float
) -> float:
    """AP of one class at one IoU: predictions ranked by score over all images, each matched
    greedily to the best unmatched target; precision interpolated (monotone envelope, all points).
    `predictions[i]` = (boxes [n, 4] xywh, scores [n]); `targets[i]` = boxes [m, 4]."""
    total = sum(len(t) for t in targets)
    if total == 0:
        return float("nan")
    ranked = [
        (score, i, box)
        for i, (boxes, scores) in enumerate(predictions)
        for box, score in zip(boxes, scores, strict=True)
    ]
    ranked.sort(key=lambda item: -item[0])
    used = [np.zeros(len(t), dtype=bool) for t in targets]
    hits = []
    for _, i, box in ranked:
        if len(targets[i]) == 0:
            hits.append(False)
            continue
        ious = box_iou(box[None], targets[i])[0]
        ious[used[i]] = -1.0
        j = int(ious.argmax())
        if ious[j] >= iou_threshold:
            used[i][j] = True
            hits.append(True)
        else:
            hits.append(False)
    if not hits:
        return 0.0
    tp = np.cumsum(hits)
    recall = tp / total
    precision = tp / np.arange(1, len(hits) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    recall = np.concatenate([[0.0], recall])
    return float(np.sum((recall[1:] - recall[:-1]) * precision))


def detection_map(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    targets: Sequence[np.ndarray],
    iou_thresholds: Sequence[float] = MGCA_IOU_THRESHOLDS,
    score_threshold: float = 0.5,
) -> float:
    """MGCA's detection metric: predictions below `score_threshold` dropped (after the detector's
    own NMS), then AP averaged over the IoU thresholds 0.40, 0.45, ..., 0.75."""
    kept = [
        (
            np.asarray(b, dtype=float).reshape(-1, 4)[np.asarray(s) >= score_threshold],
            np.asarray(s)[np.asarray(s) >= score_threshold],
        )
        for b, s in predictions
    ]
    aps = [average_precision(kept, targets, t) for t in iou_thresholds]
    return float(np.mean(aps))
