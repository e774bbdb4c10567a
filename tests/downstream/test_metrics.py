import numpy as np
import pytest

from cmcgns.downstream.metrics import MGCA_IOU_THRESHOLDS, average_precision, box_iou, detection_map, mean_dice


def test_dice_is_per_image_and_an_empty_mask_scores_one_only_for_an_empty_prediction():
    target = np.zeros((4, 4))
    target[:2, :2] = 1  # 4 pixels
    pred = np.zeros((4, 4))
    pred[:2, :1] = 0.9  # 2 of them
    empty = np.zeros((4, 4))
    spurious = np.zeros((4, 4))
    spurious[3, 3] = 0.7
    # per image: 2*2/(2+4) = 2/3; empty/empty = 1; empty target with a prediction = 0
    assert mean_dice([pred, empty, spurious], [target, empty, empty]) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert mean_dice([pred * 0.4], [target]) == 0.0  # below the 0.5 threshold nothing is predicted


def test_box_iou_on_hand_made_boxes():
    assert box_iou([[0, 0, 2, 2]], [[1, 1, 2, 2]])[0, 0] == pytest.approx(1 / 7)
    assert box_iou([[0, 0, 2, 2]], [[2, 2, 1, 1]])[0, 0] == 0.0


def test_average_precision_by_hand():
    targets = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])]
    # image 0: a hit (0.9); image 1: a miss ranked 0.8 and a hit ranked 0.7
    predictions = [
        (np.array([[0, 0, 10, 10]]), np.array([0.9])),
        (np.array([[50, 50, 10, 10], [1, 0, 10, 10]]), np.array([0.8, 0.7])),
    ]
    # ranked hits: T F T -> precision 1, 1/2, 2/3; recall 1/2, 1/2, 1 -> AP = 1/2*1 + 1/2*2/3
    assert average_precision(predictions, targets, 0.5) == pytest.approx(0.5 + 1 / 3)


def test_map_averages_iou_040_to_075_after_the_confidence_threshold():
    assert MGCA_IOU_THRESHOLDS == (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75)
    target = [np.array([[0, 0, 10, 10]])]
    # IoU of [0, 0, 10, 6] with the target = 0.6: a hit at 0.40 ... 0.60 (5 thresholds), a miss above
    shifted = [(np.array([[0, 0, 10, 6]]), np.array([0.9]))]
    assert detection_map(shifted, target) == pytest.approx(5 / 8)
    low_confidence = [(np.array([[0, 0, 10, 10]]), np.array([0.3]))]
    assert detection_map(low_confidence, target) == 0.0  # dropped below confidence 0.5


def test_coco_interpolation_samples_101_recall_points_by_hand():
    targets = [np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10]])]
    predictions = [
        (np.array([[0, 0, 10, 10]]), np.array([0.9])),
        (np.array([[50, 50, 10, 10], [1, 0, 10, 10]]), np.array([0.8, 0.7])),
    ]
    # envelope: precision 1 up to recall 1/2 (51 points: 0.00 ... 0.50), 2/3 above (50 points)
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert average_precision(predictions, targets, 0.5, "coco-101") == pytest.approx(expected)


def test_mgca_map_skips_images_without_a_kept_box_or_a_target_by_hand():
    from cmcgns.downstream.metrics import mgca_detection_map

    box = np.array([[0, 0, 10, 10]])
    predictions = [
        (box, np.array([0.9])),  # image 0: a hit
        (np.array([[50, 50, 10, 10]]), np.array([0.95])),  # image 1: healthy, a confident false positive
        (box, np.array([0.3])),  # image 2: its only box is below 0.5, so MGCA leaves the image out
    ]
    targets = [box, np.zeros((0, 4)), box]
    # MGCA: only image 0 is kept -> one hit, one target: AP 1 at every threshold
    assert mgca_detection_map(predictions, targets) == pytest.approx(1.0)
    # ours: ranked F (image 1) then T (image 0); 2 targets -> precision 1/2 at recall 1/2: AP 1/4
    assert detection_map(predictions, targets) == pytest.approx(0.25)
    assert np.isnan(mgca_detection_map([(box, np.array([0.1]))], [box]))  # nothing left to score


def _random_case(rng, images=40):
    predictions, targets = [], []
    for _ in range(images):
        targets.append(np.column_stack([rng.uniform(0, 80, (k := rng.integers(0, 3), 2)), rng.uniform(8, 30, (k, 2))]))
        n = int(rng.integers(0, 5))
        boxes = np.column_stack([rng.uniform(0, 80, (n, 2)), rng.uniform(8, 30, (n, 2))])
        if k and n:  # some boxes near a target, so every IoU threshold sees hits and misses
            boxes[0, :2] = targets[-1][0, :2] + rng.normal(0, 3, 2)
            boxes[0, 2:] = targets[-1][0, 2:] * rng.uniform(0.7, 1.3, 2)
        predictions.append((boxes, rng.uniform(0, 1, n).round(3)))
    return predictions, targets


def _cocoeval(predictions, targets, iou_thresholds=MGCA_IOU_THRESHOLDS) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [{"id": i} for i in range(len(targets))], "categories": [{"id": 1}], "annotations": []}
    for i, boxes in enumerate(targets):
        for box in boxes:
            gt["annotations"].append(
                {"id": len(gt["annotations"]) + 1, "image_id": i, "category_id": 1, "bbox": [float(v) for v in box],
                 "area": float(box[2] * box[3]), "iscrowd": 0}
            )  # fmt: skip
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    dets = [
        {"image_id": i, "category_id": 1, "bbox": [float(v) for v in box], "score": float(score)}
        for i, (boxes, scores) in enumerate(predictions)
        for box, score in zip(boxes, scores)
    ]
    evaluation = COCOeval(coco, coco.loadRes(dets) if dets else COCO(), "bbox")
    evaluation.params.iouThrs = np.array(iou_thresholds)
    evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
    evaluation.params.maxDets = [100]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][:, :, 0, 0, 0]  # [iou, recall points]
    return float(np.mean(precision[precision > -1]))


@pytest.mark.mm
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_detection_numbers_agree_with_pycocotools(seed):
    """The MGCA number is COCOeval over the images MGCA keeps; ours with COCO's interpolation is
    COCOeval over every image (so what differs between the two is only what the docstrings say)."""
    from cmcgns.downstream.metrics import mgca_detection_map

    predictions, targets = _random_case(np.random.default_rng(seed))
    kept = [i for i, ((_, s), t) in enumerate(zip(predictions, targets)) if (np.asarray(s) >= 0.5).any() and len(t)]
    confident = [(b[s >= 0.5], s[s >= 0.5]) for b, s in predictions]
    expected_mgca = _cocoeval([confident[i] for i in kept], [targets[i] for i in kept])
    assert mgca_detection_map(predictions, targets) == pytest.approx(expected_mgca, abs=1e-9)
    ours_coco = np.mean([average_precision(confident, targets, t, "coco-101") for t in MGCA_IOU_THRESHOLDS])
    assert ours_coco == pytest.approx(_cocoeval(confident, targets), abs=1e-9)


def test_mgca_batch_mean_dice_equals_ours_when_the_batch_divides_the_split_and_differs_otherwise():
    from cmcgns.downstream.metrics import mgca_batch_mean_dice

    rng = np.random.default_rng(0)
    targets = [(rng.uniform(size=(8, 8)) > 0.7).astype(float) * (i % 3 != 0) for i in range(12)]  # some empty
    predictions = [rng.uniform(size=(8, 8)) for _ in range(12)]
    ours = mean_dice(predictions, targets)
    for batch in (1, 2, 3, 4, 6, 12):
        assert mgca_batch_mean_dice(predictions, targets, batch) == pytest.approx(ours)
    # by hand: per-image 1, 0, 2/3; batches of 2 weigh the short last batch as much as the full one
    full, empty = np.ones((2, 2)), np.zeros((2, 2))
    half = np.array([[1.0, 1.0], [0.0, 0.0]])
    images, truths = [empty, full, half], [empty, empty, full]  # 1 (empty/empty), 0 (spurious), 2*2/(2+4)
    assert mean_dice(images, truths) == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert mgca_batch_mean_dice(images, truths, 2) == pytest.approx(((1 + 0) / 2 + 2 / 3) / 2)
