import torch
from torch import nn

from cmcgns.downstream.classification import EarlyStopping, masked_bce


def test_early_stopping_keeps_the_best_validation_state_and_stops_after_patience():
    layer = nn.Linear(1, 1, bias=False)
    stopper = EarlyStopping(patience=2)
    stops = []
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 1.5, 1.6, 1.7, 0.1], start=1):
        with torch.no_grad():
            layer.weight.fill_(float(epoch))  # the state of this epoch
        stops.append(stopper.update(epoch, loss, [layer]))
        if stops[-1]:
            break
    assert stops == [False, False, False, False, False, True]  # two epochs without a new best after epoch 4
    stopper.restore([layer])
    assert stopper.best_epoch == 4 and stopper.best_loss == 1.5 and layer.weight.item() == 4.0


def test_masked_bce_ignores_unknown_labels():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    target = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    expected = nn.functional.binary_cross_entropy_with_logits(torch.tensor([2.0, 0.5]), torch.tensor([1.0, 0.0]))
    assert torch.allclose(masked_bce(logits, target), expected)
    assert masked_bce(logits, torch.full((2, 2), float("nan"))).item() == 0.0


def test_multiclass_metrics_by_hand():
    import numpy as np

    from cmcgns.downstream.classification import multiclass_metrics

    y = np.eye(3)[[0, 1, 2, 2]]  # normal, pneumonia, COVID-19, COVID-19
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6], [0.1, 0.1, 0.8]])
    out = multiclass_metrics(y, p)
    assert out["acc"] == 0.75  # the pneumonia study is called COVID-19
    # one-vs-rest AUROC: normal 1.0; pneumonia 1.0 (0.3 above 0.2, 0.2, 0.1); COVID-19: positives 0.6, 0.8
    # against negatives 0.1, 0.6 -> pairs won 3.5 of 4 = 0.875
    assert out["auroc"] == (1.0 + 1.0 + 0.875) / 3


def test_bootstrap_interval_brackets_the_metric_and_narrows_with_more_images():
    import numpy as np

    from cmcgns.downstream.classification import _metrics, bootstrap_ci

    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 2, n).astype(np.float32)[:, None]
        p = np.clip(y * 0.3 + rng.random((n, 1)) * 0.7, 0, 1)
        return y, p

    small, large = sample(30), sample(600)
    lo_s, hi_s = bootstrap_ci(_metrics, *small)["auroc"]
    lo_l, hi_l = bootstrap_ci(_metrics, *large)["auroc"]
    assert lo_s <= _metrics(*small)["auroc"] <= hi_s and lo_l <= _metrics(*large)["auroc"] <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 2  # about 1/sqrt(20) as wide
