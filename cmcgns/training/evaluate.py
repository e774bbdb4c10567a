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
        feats.append(pooled.float().cpu())
        img.append(model.embed_images(batch["images"]).float().cpu())
        txt.append(model.embed_reports(batch).float().cpu())
        labels.append(batch["labels"].cpu())
    return torch.cat(img), torch.cat(txt), torch.cat(feats), torch.cat(labels)


def retrieval_recall(img: torch.Tensor, txt: torch.Tensor, k: int = 1) -> float:
    sims = img @ txt.t()
    topk = sims.topk(min(k, sims.shape[1]), dim=1).indices
    return float((topk == torch.arange(len(img)).unsqueeze(1)).any(1).float().mean())


def linear_probe_auc(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, seed: int = 0) -> float:
    """Mean AUROC over labels that have both classes in train and test (NaN labels skipped)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    tr, te = scaler.transform(train_x), scaler.transform(test_x)
    aucs = []
    for j in range(train_y.shape[1]):
        ytr, yte = train_y[:, j], test_y[:, j]
        mtr, mte = ~np.isnan(ytr), ~np.isnan(yte)
        ytr, yte = (ytr[mtr] != 0).astype(int), (yte[mte] != 0).astype(int)
        if len(set(ytr)) < 2 or len(set(yte)) < 2:
            continue
        clf = LogisticRegression(max_iter=2000, C=0.5, random_state=seed).fit(tr[mtr], ytr)
        aucs.append(roc_auc_score(yte, clf.predict_proba(te[mte])[:, 1]))
    return float(np.mean(aucs)) if aucs else float("nan")
