import numpy as np
import torch

from cmcgns.training.evaluate import linear_probe_auc, linear_probe_auc_fraction, retrieval_recall


def _data(n: int, informative: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < 0.3).astype(float)
    y[rng.random(n) < 0.1, 2] = np.nan  # "not mentioned" is skipped, not a negative
    x = rng.normal(size=(n, 16))
    if informative:
        x[:, :3] += 2.0 * np.nan_to_num(y)
    return x, y


def test_linear_probe_separates_informative_from_noise_features():
    (tx, ty), (ex, ey) = _data(300, True, 0), _data(200, True, 1)
    assert linear_probe_auc(tx, ty, ex, ey) > 0.9
    (tx, ty), (ex, ey) = _data(300, False, 0), _data(200, False, 1)
    assert abs(linear_probe_auc(tx, ty, ex, ey) - 0.5) < 0.1


def test_label_fraction_probe_is_lower_with_fewer_labels_and_deterministic():
    (tx, ty), (ex, ey) = _data(400, True, 0), _data(200, True, 1)
    tx[:, 3:] *= 3.0  # strong nuisance dimensions: 40 labelled rows are not enough to ignore them
    few = linear_probe_auc_fraction(tx, ty, ex, ey, fraction=0.1)
    assert few == linear_probe_auc_fraction(tx, ty, ex, ey, fraction=0.1)
    assert 0.5 < few < linear_probe_auc(tx, ty, ex, ey)


def test_retrieval_recall_counts_the_matching_pair():
    img = torch.eye(4)
    assert retrieval_recall(img, img, 1) == 1.0
    assert retrieval_recall(img, img.roll(1, 0), 1) == 0.0
