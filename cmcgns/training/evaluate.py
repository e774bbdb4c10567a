"""Representation quality on held-out pairs: image->report retrieval R@K and a linear-probe AUROC
on frozen global image features."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def embed_split(model, loader, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    model.eval()
    img, txt, feats, labels = [], [], [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        pooled, _ = model.image_encoder(batch["images"])
        feats.append(pooled.float().cpu().clone())  # a view of the token tensor otherwise: memory grows per batch
        img.append(model.embed_images(batch["images"]).float().cpu())
        txt.append(model.embed_reports(batch).float().cpu())
        labels.append(batch["labels"].cpu())
    return torch.cat(img), torch.cat(txt), torch.cat(feats), torch.cat(labels)


def retrieval_recall(img: torch.Tensor, txt: torch.Tensor, k: int = 1) -> float:
    sims = img @ txt.t()
    topk = sims.topk(min(k, sims.shape[1]), dim=1).indices
    return float((topk == torch.arange(len(img)).unsqueeze(1)).any(1).float().mean())


def linear_probe_auc(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    seed: int = 0,
    labels: list[int] | None = None,
) -> float:
    """Mean AUROC over labels that have both classes in train and test (NaN labels skipped);
    `labels` restricts the mean to those label columns."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    tr, te = scaler.transform(train_x), scaler.transform(test_x)
    aucs = []
    for _, mtr, mte, ytr, yte in _probe_columns(train_y, test_y, labels):
        clf = LogisticRegression(max_iter=2000, C=0.5, random_state=seed).fit(tr[mtr], ytr)
        aucs.append(roc_auc_score(yte, clf.predict_proba(te[mte])[:, 1]))
    return float(np.mean(aucs)) if aucs else float("nan")


def _probe_columns(train_y: np.ndarray, test_y: np.ndarray, labels: list[int] | None = None):
    """(column, train mask, test mask, train 0/1, test 0/1) of each label column the probe scores:
    NaN rows skipped, both classes present in train and in test."""
    for j in labels if labels is not None else range(train_y.shape[1]):
        ytr, yte = train_y[:, j], test_y[:, j]
        mtr, mte = ~np.isnan(ytr), ~np.isnan(yte)
        ytr, yte = (ytr[mtr] != 0).astype(int), (yte[mte] != 0).astype(int)
        if len(set(ytr)) == 2 and len(set(yte)) == 2:
            yield j, mtr, mte, ytr, yte


def probe_label_counts(train_y: np.ndarray, test_y: np.ndarray) -> list[tuple[int, int]]:
    """(positives, negatives) in the test rows of each label the full probe scores: what the
    probe AUROC's interval rests on."""
    return [(int(yte.sum()), int(len(yte) - yte.sum())) for *_, yte in _probe_columns(train_y, test_y)]


def probeable_labels(train_y: np.ndarray, test_y: np.ndarray, min_positives: int) -> list[int]:
    """Label columns with at least `min_positives` positives and negatives in train and both classes in test."""
    keep = []
    for j in range(train_y.shape[1]):
        ytr, yte = np.nan_to_num(train_y[:, j]) != 0, np.nan_to_num(test_y[:, j]) != 0
        if min(ytr.sum(), (~ytr).sum()) >= min_positives and 0 < yte.sum() < len(yte):
            keep.append(j)
    return keep


def linear_probe_auc_fraction(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, fraction: float, repeats: int = 5
) -> float:
    """Label-efficiency probe: the linear probe trained on `fraction` of the training rows, mean
    over `repeats` seeded random subsets. Subsets depend only on (repeat, number of rows) and
    labels are chosen from the label matrix alone, so two models evaluated on the same split are
    scored on exactly the same rows and labels."""
    labels = probeable_labels(train_y, test_y, min_positives=max(2, int(round(2 / fraction))))
    if not labels:
        return float("nan")
    n = max(2, int(round(fraction * len(train_x))))
    scores = []
    for repeat in range(repeats):
        idx = np.random.default_rng(repeat).permutation(len(train_x))[:n]
        scores.append(linear_probe_auc(train_x[idx], train_y[idx], test_x, test_y, seed=repeat, labels=labels))
    finite = [s for s in scores if np.isfinite(s)]
    return float(np.mean(finite)) if finite else float("nan")
