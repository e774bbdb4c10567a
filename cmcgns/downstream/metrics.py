"""Downstream metrics of the MGCA protocol, as plain functions (tested against hand computations
and pycocotools): per-image Dice for segmentation and mean average precision over IoU 0.40,
0.45, ..., 0.75 for detection, in two computations:

- `detection_map` (ours, reported as `map_40_75`): every test image counts, healthy ones too, so
  a false positive on a healthy lung costs precision; the all-point precision envelope is
  integrated.
- `mgca_detection_map` (MGCA's, reported as `map_40_75_mgca`): what MGCA's detector evaluation
  computes (torchmetrics' COCO mAP, i.e. 101 recall points and at most 100 boxes per image), over
  the images it keeps: an image is left out when no box survives confidence 0.5 + NMS, or when it
  has no target box. The number to set beside MGCA/CM-CGNS tables, not an honest detector score.
"""

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


def mgca_batch_mean_dice(
    predictions: Sequence[np.ndarray], targets: Sequence[np.ndarray], batch_size: int, threshold: float = 0.5
) -> float:
    """MGCA's aggregation, for comparison only: the per-image Dice averaged within each test batch,
    then the batch means averaged, so a short last batch weighs as much as a full one and the
    number changes with the batch size. Equal to `mean_dice` when the batch size divides the split.
    We report `mean_dice` (every image weighs the same)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    scores = [dice_per_image(p, t, threshold) for p, t in zip(predictions, targets, strict=True)]
    batches = [scores[i : i + batch_size] for i in range(0, len(scores), batch_size)]
    return float(np.mean([np.mean(b) for b in batches])) if batches else float("nan")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes in [x, y, w, h]."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    ax2, ay2, bx2, by2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def average_precision(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    targets: Sequence[np.ndarray],
    iou_threshold: float,
    interpolation: str = "all-points",
) -> float:
    """AP of one class at one IoU: predictions ranked by score over all images, each matched
    greedily to the best unmatched target; precision interpolated by its monotone envelope, then
    integrated over every recall step (`all-points`) or sampled at COCO's 101 recall points
    (`coco-101`: pycocotools and torchmetrics). `predictions[i]` = (boxes [n, 4] xywh, scores
    [n]); `targets[i]` = boxes [m, 4]."""
    if interpolation not in ("all-points", "coco-101"):
        raise ValueError(f"interpolation must be all-points or coco-101, got {interpolation!r}")
    total = sum(len(t) for t in targets)
    if total == 0:
        return float("nan")
    ranked = [
        (score, i, box)
        for i, (boxes, scores) in enumerate(predictions)
        for box, score in zip(boxes, scores, strict=True)
    ]
    ranked.sort(key=lambda item: -item[0])  # stable: ties keep image order, as COCO's mergesort
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
    if interpolation == "coco-101":  # the envelope at the first rank reaching each recall point, 0 past the last
        found = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
        return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in found]))
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
    kept = [_confident(boxes, scores, score_threshold) for boxes, scores in predictions]
    aps = [average_precision(kept, targets, t) for t in iou_thresholds]
    return float(np.mean(aps))


def _confident(boxes, scores, score_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """An image's boxes [n, 4] and scores [n] with the scores below `score_threshold` dropped."""
    boxes, scores = np.asarray(boxes, dtype=float).reshape(-1, 4), np.asarray(scores, dtype=float)
    keep = scores >= score_threshold
    return boxes[keep], scores[keep]


def mgca_detection_map(
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    targets: Sequence[np.ndarray],
    iou_thresholds: Sequence[float] = MGCA_IOU_THRESHOLDS,
    score_threshold: float = 0.5,
    max_detections: int = 100,
) -> float:
    """MGCA's computation (module docstring): boxes below `score_threshold` dropped, then only the
    images with at least one box left and at least one target box, COCO's 101-point AP with at
    most `max_detections` boxes per image (the highest scored), averaged over the IoU thresholds.
    NaN when no image is left (torchmetrics reports -1 there)."""
    kept_predictions, kept_targets = [], []
    for (boxes, scores), target in zip(predictions, targets, strict=True):
        boxes, scores = _confident(boxes, scores, score_threshold)
        target = np.asarray(target, dtype=float).reshape(-1, 4)
        if len(scores) == 0 or len(target) == 0:
            continue  # MGCA: `if out is None: continue` and `if filtered_target.shape[0] > 0`
        top = np.argsort(-scores, kind="mergesort")[:max_detections]
        kept_predictions.append((boxes[top], scores[top]))
        kept_targets.append(target)
    if not kept_targets:
        return float("nan")
    aps = [average_precision(kept_predictions, kept_targets, t, "coco-101") for t in iou_thresholds]
    return float(np.mean(aps))
