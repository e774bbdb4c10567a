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
