"""Image classification: linear probe (frozen backbone) or full fine-tune; AUROC and accuracy."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pydantic
import torch
from torch import nn

from cmcgns.data.images import augment, load_image
from cmcgns.data.manifest import read_manifest
from cmcgns.downstream.base import TaskRun, backbone_spec, fraction_subset
from cmcgns.errors import DataError
from cmcgns.models.image_encoder import ImageEncoder
from cmcgns.plugins import Options, Register, hookimpl


class ClassificationOptions(Options):
    mode: Literal["linear", "finetune"] = "linear"
    epochs: int = pydantic.Field(30, ge=1)
    lr: float = pydantic.Field(1e-3, gt=0)
    batch_size: int = pydantic.Field(32, ge=1)
    backbone: str = "vit_tiny_patch16_224"
    image_size: int = pydantic.Field(64, ge=32)
    labels: list[str] | None = None


def _tensors(directory, rows, size, train: bool, seed: int):
    images = torch.stack([load_image(directory / r["image"], size) for r in rows])
    if train:
        gen = torch.Generator().manual_seed(seed)
        images = torch.stack([augment(x, gen) for x in images])
    return images


def _labels(rows, names) -> np.ndarray:
    return np.array(
        [[np.nan if r["labels"].get(n) is None else float(r["labels"][n] != 0) for n in names] for r in rows],
        dtype=np.float32,
    )


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    aucs, accs = [], []
    for j in range(y.shape[1]):
        m = ~np.isnan(y[:, j])
        if m.sum() == 0:
            continue
        accs.append(float(((p[m, j] > 0.5) == (y[m, j] > 0.5)).mean()))
        if len(set(y[m, j])) == 2:
            aucs.append(float(roc_auc_score(y[m, j], p[m, j])))
    return {
        "auroc": float(np.mean(aucs)) if aucs else float("nan"),
        "acc": float(np.mean(accs)) if accs else float("nan"),
    }


class ClassificationTask:
    metrics = ("auroc", "acc")

    def __init__(self, name: str, dataset: str, options: ClassificationOptions) -> None:
        self.name, self.dataset, self.options = name, dataset, options

    def run(self, run: TaskRun) -> dict[str, float]:
        opts = self.options
        manifest = read_manifest(run.manifest_dir)
        meta = manifest.meta
        names = opts.labels or list(meta.get("labels", []))
        if not names:
            raise DataError(f"{run.manifest_dir}: manifest lists no labels")
        train = fraction_subset(manifest.split("train"), run.fraction, run.seed, names[0])
        test = manifest.split("test") or manifest.split("val")
        if not train or not test:
            raise DataError(f"{run.manifest_dir}: needs train and test rows (have {meta.get('splits')})")
        spec = backbone_spec(run.backbone_dir, opts.backbone, opts.image_size, "image_size" in opts.model_fields_set)
        torch.manual_seed(run.seed)
        encoder = ImageEncoder(spec.timm_name, spec.image_size, spec.timm_file).to(run.device)
        head = nn.Linear(encoder.dim, len(names)).to(run.device)
        y_train = torch.from_numpy(_labels(train, names))
        x_train = _tensors(run.manifest_dir, train, spec.image_size, opts.mode == "finetune", run.seed)
        x_test = _tensors(run.manifest_dir, test, spec.image_size, False, run.seed)
        if opts.mode == "linear":
            encoder.eval()
            with torch.no_grad():
                f_train = torch.cat([encoder(x.to(run.device))[0] for x in x_train.split(64)])
                f_test = torch.cat([encoder(x.to(run.device))[0] for x in x_test.split(64)])
            mean, std = f_train.mean(0), f_train.std(0).clamp_min(1e-6)
            f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
            params, forward_train, forward_test = (
                list(head.parameters()),
                (lambda i: head(f_train[i])),
                (lambda: head(f_test)),
            )
        else:
            params = list(encoder.parameters()) + list(head.parameters())

            def forward_train(i):
                return head(encoder(x_train[i].to(run.device))[0])

            def forward_test():
                encoder.eval()
                with torch.no_grad():
                    return torch.cat([head(encoder(x.to(run.device))[0]) for x in x_test.split(64)])

        optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(run.seed)
        for _ in range(opts.epochs):
            for idx in torch.randperm(len(train), generator=gen).split(opts.batch_size):
                target = y_train[idx].to(run.device)
                known = ~torch.isnan(target)
                logits = forward_train(idx)
                loss = nn.functional.binary_cross_entropy_with_logits(logits[known], target[known])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            probs = torch.sigmoid(forward_test()).cpu().numpy()
        result = _metrics(_labels(test, names), probs)
        result.update({"train_rows": float(len(train)), "test_rows": float(len(test))})
        return result


@hookimpl
def register_downstream_tasks(register: Register) -> None:
    def classification(name: str, dataset: str, description: str) -> None:
        register(
            name,
            lambda options: ClassificationTask(name, dataset, options),
            options=ClassificationOptions,
            description=description,
        )

    classification("chexpert-cls", "chexpert", "CheXpert 5-label classification (AUROC)")
    classification("rsna-cls", "rsna", "RSNA pneumonia classification (AUROC)")
    classification("covidx-cls", "covidx", "COVIDx positive/negative (ACC, AUROC)")
