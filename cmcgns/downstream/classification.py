"""Image classification: linear probe (frozen backbone) or full fine-tune; AUROC and accuracy.

Two protocols:
- `mgca` (default; MGCA's downstream protocol, which the paper follows): features (linear) or
  images (finetune) streamed through a DataLoader on the run's device; AdamW lr 5e-4, weight decay
  1e-6, batch 48, cosine schedule, up to 100 epochs with early stopping on the validation loss
  (patience 10); the test split is scored with the best-validation state. Validation is the
  manifest's `val` split, else a patient-disjoint hold-out of the training split; label fractions
  are drawn from the remaining training rows only.
- `fast`: a fixed number of epochs, no validation, for CI and the demo.
Linear-probe features can be cached on disk, keyed by the backbone's weights hash.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import pydantic
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cmcgns.data.images import augment, load_image
from cmcgns.data.manifest import ManifestRow, read_manifest
from cmcgns.data.preprocess.base import stable_split
from cmcgns.downstream.base import TaskRun, backbone_spec, fraction_subset, training_subset
from cmcgns.io.host_memory import PeriodicRelease, map_large_blocks, release_free_heap
from cmcgns.errors import ConfigError, DataError
from cmcgns.models.image_encoder import ImageEncoder
from cmcgns.plugins import Options, Register, hookimpl

PROTOCOL_DEFAULTS = {
    "mgca": {"epochs": 100, "lr": 5e-4, "weight_decay": 1e-6, "batch_size": 48},
    "fast": {"epochs": 30, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 32},
}


class ClassificationOptions(Options):
    protocol: Literal["mgca", "fast"] = pydantic.Field("mgca", description="mgca: early stopping on validation loss")
    mode: Literal["linear", "finetune"] = "linear"
    epochs: int | None = pydantic.Field(None, ge=1, description="maximum epochs; unset = 100 (mgca) or 30 (fast)")
    lr: float | None = pydantic.Field(None, gt=0, description="unset = 5e-4 (mgca) or 1e-3 (fast)")
    weight_decay: float | None = pydantic.Field(None, ge=0, description="unset = 1e-6 (mgca) or 1e-4 (fast)")
    batch_size: int | None = pydantic.Field(None, ge=1, description="unset = 48 (mgca) or 32 (fast)")
    patience: int = pydantic.Field(10, ge=1, description="epochs without a lower validation loss before stopping")
    val_fraction: float = pydantic.Field(
        0.2, gt=0, lt=1, description="patient-disjoint hold-out when there is no val split"
    )
    num_workers: int = pydantic.Field(2, ge=0, description="DataLoader workers for image decoding")
    feature_cache: bool = pydantic.Field(True, description="cache linear-probe features on disk (keyed by the weights)")
    backbone: str = "vit_tiny_patch16_224"
    image_size: int = pydantic.Field(64, ge=32)
    labels: list[str] | None = None
    subset_lists: Path | None = pydantic.Field(
        None, description="folder of <task>-f<fraction>-s<seed>.txt training-row ids to use instead of drawing"
    )

    def setting(self, name: str) -> float:
        value = getattr(self, name)
        return PROTOCOL_DEFAULTS[self.protocol][name] if value is None else value


class ImageRows(Dataset):
    """Rows of a manifest as (image, label vector); augmentation is a function of (seed, epoch, index)."""

    def __init__(
        self, directory: Path, rows: list[ManifestRow], names: list[str], size: int, train: bool, seed: int
    ) -> None:
        self.directory, self.rows, self.size, self.train, self.seed = Path(directory), rows, size, train, seed
        self.labels = torch.from_numpy(_labels(rows, names))
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = load_image(self.directory / self.rows[index]["image"], self.size)
        if self.train:
            image = augment(image, torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + index))
        return image, self.labels[index]


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


def bootstrap_ci(
    metric, y: np.ndarray, p: np.ndarray, seed: int = 0, resamples: int = 1000, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of each value `metric(y, p)` returns, resampling test images."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        for name, value in metric(y[idx], p[idx]).items():
            if not math.isnan(value):
                draws.setdefault(name, []).append(value)
    tail = (1 - level) / 2 * 100
    return {k: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))) for k, v in draws.items() if v}


def multiclass_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """One-hot targets `y` [N, C] and class probabilities `p`: accuracy of the argmax and the macro
    one-vs-rest AUROC over the classes present with both outcomes."""
    from sklearn.metrics import roc_auc_score

    truth, guess = y.argmax(1), p.argmax(1)
    aucs = [float(roc_auc_score(truth == c, p[:, c])) for c in range(y.shape[1]) if 0 < (truth == c).sum() < len(truth)]
    return {"acc": float((truth == guess).mean()), "auroc": float(np.mean(aucs)) if aucs else float("nan")}


def multiclass_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against one-hot targets (exclusive classes, e.g. COVIDx normal/pneumonia/COVID-19)."""
    return nn.functional.cross_entropy(logits, target.argmax(1))


def masked_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the known labels only (NaN = not mentioned)."""
    known = ~torch.isnan(target)
    if not known.any():
        return logits.sum() * 0.0
    return nn.functional.binary_cross_entropy_with_logits(logits[known], target[known])


def split_rows(manifest, fraction: float, seed: int, names: list[str], opts: ClassificationOptions):
    """(train subset, validation, test): validation is the `val` split, else a patient-disjoint
    hold-out of the training split (mgca); the label fraction comes from the remaining training rows.
    Rows of a fixed evaluation set drawn from the training split (CheXpert 5x200) are never trained
    or validated on (`cmcgns.data.preprocess.eval_sets`)."""
    from cmcgns.data.preprocess.eval_sets import training_exclusions

    excluded = training_exclusions(manifest)
    train_all, val, test = manifest.split("train"), manifest.split("val"), manifest.split("test")
    train_all = [r for r in train_all if str(r["id"]) not in excluded]
    val = [r for r in val if str(r["id"]) not in excluded]
    if opts.protocol == "mgca" and not val:
        fractions = {"train": 1 - opts.val_fraction, "val": opts.val_fraction}
        by_patient = {
            r["id"]: stable_split(str(r.get("patient") or r.get("subject_id") or r["id"]), fractions) for r in train_all
        }
        val = [r for r in train_all if by_patient[r["id"]] == "val"]
        train_all = [r for r in train_all if by_patient[r["id"]] == "train"]
    if opts.protocol == "fast" and not test:
        test = val  # the quick protocol scores the validation split when there is no test split
    if not train_all or not test or (opts.protocol == "mgca" and not val):
        raise DataError(f"{manifest.directory}: needs train, val and test rows (have {manifest.meta.get('splits')})")
    return fraction_subset(train_all, fraction, seed, names[0]), val, test


class EarlyStopping:
    """Keeps the state with the lowest validation loss; says when `patience` epochs passed without one."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best_loss, self.best_epoch, self.best_state, self.waited = patience, math.inf, 0, None, 0

    def update(self, epoch: int, loss: float, modules: list[nn.Module]) -> bool:
        """Record this epoch; True when training should stop."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.waited = loss, epoch, 0
            self.best_state = [copy.deepcopy(m.state_dict()) for m in modules]
        else:
            self.waited += 1
        return self.waited >= self.patience

    def restore(self, modules: list[nn.Module]) -> None:
        for module, state in zip(modules, self.best_state or [], strict=False):
            module.load_state_dict(state)


def _read_feature_cache(path: Path, rows: int, dim: int) -> torch.Tensor | None:
    """Cached features, or None (with one line) when the file is damaged, holds anything but a
    [rows, dim] float tensor, or a pickle payload (refused without running it): they are recomputed."""
    import sys

    try:
        cached = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = "not plain tensors" if "Weights only load failed" in str(exc) else type(exc).__name__
        cached = reason
    if isinstance(cached, torch.Tensor) and cached.is_floating_point() and tuple(cached.shape) == (rows, dim):
        return cached
    what = cached if isinstance(cached, str) else f"a {type(cached).__name__} of the wrong kind"
    print(f"{path}: feature cache unreadable ({what}); computing the features again", file=sys.stderr)
    return None


class ClassificationTask:
    def __init__(self, name: str, dataset: str, options: ClassificationOptions) -> None:
        self.name, self.dataset, self.options = name, dataset, options

    def _loader(self, dataset: Dataset, shuffle: bool, device: str, seed: int) -> DataLoader:
        workers = self.options.num_workers
        return DataLoader(
            dataset,
            batch_size=int(self.options.setting("batch_size")),
            shuffle=shuffle,
            num_workers=workers,
            pin_memory=torch.device(device).type == "cuda",
            persistent_workers=workers > 0,
            generator=torch.Generator().manual_seed(seed),
        )

    def _features(self, encoder: ImageEncoder, rows, names, size, run: TaskRun, cache_key: str | None) -> torch.Tensor:
        """Frozen-encoder features of `rows`, streamed (never a whole split of images in memory)."""
        cache = None
        if cache_key is not None and self.options.feature_cache:
            ids = hashlib.sha256(json.dumps([r["id"] for r in rows]).encode()).hexdigest()[:16]
            cache = run.work_dir.parent / "feature-cache" / f"{cache_key}-{ids}.pt"
            if cache.is_file():
                cached = _read_feature_cache(cache, len(rows), encoder.dim)
                if cached is not None:
                    return cached
        # one preallocated matrix filled batch by batch: per-batch copies kept in a list (a ViT's pooled
        # feature is moreover a view of its whole token tensor) fragment the heap between the large
        # image batches, and the process grew with the split
        features = torch.empty(len(rows), encoder.dim)
        start, release = 0, PeriodicRelease()
        with torch.no_grad():
            for images, _ in self._loader(
                ImageRows(run.manifest_dir, rows, names, size, False, run.seed), False, run.device, 0
            ):
                pooled = encoder(images.to(run.device, non_blocking=True))[0]
                features[start : start + len(pooled)] = pooled.float()
                start += len(pooled)
                del images, pooled
                release.tick()  # the heap otherwise keeps every freed image batch (see cmcgns.io.host_memory)
        release_free_heap()
        if cache is not None:
            from cmcgns.io.atomic import atomic_open

            with atomic_open(cache, "wb") as handle:
                torch.save(features, handle)
        return features

    def run(self, run: TaskRun) -> dict[str, float]:
        opts = self.options
        map_large_blocks()  # image batches are mapped and unmapped, not kept by the heap (cmcgns.io.host_memory)
        manifest = read_manifest(run.manifest_dir)
        names = opts.labels or list(manifest.meta.get("labels", []))
        known = list(manifest.meta.get("labels", []))
        unknown = [n for n in opts.labels or [] if known and n not in known]
        if unknown:
            raise ConfigError(
                f"{self.name}: labels: {unknown[0]!r} is not a label of {manifest.directory} "
                f"(it has: {', '.join(known)}); every score of it would be NaN"
            )
        if not names:
            raise DataError(f"{run.manifest_dir}: manifest lists no labels")
        every_train_row, val, test = split_rows(manifest, 1.0, run.seed, names, opts)
        train, subset_missing = training_subset(every_train_row, run, self.name, opts.subset_lists, names[0])
        multiclass = manifest.meta.get("label_type") == "multiclass" and opts.labels is None
        loss_of = multiclass_ce if multiclass else masked_bce
        spec = backbone_spec(run.backbone_dir, opts.backbone, opts.image_size, "image_size" in opts.model_fields_set)
        torch.manual_seed(run.seed)
        encoder = ImageEncoder(spec.timm_name, spec.image_size, spec.timm_file).to(run.device)
        head = nn.Linear(encoder.dim, len(names)).to(run.device)
        epochs, mgca = int(opts.setting("epochs")), opts.protocol == "mgca"

        if opts.mode == "linear":
            encoder.eval()
            key = f"{spec.weights_id}-{spec.timm_name}-{spec.image_size}" if spec.weights_sha256 else None
            feats = {
                split: self._features(encoder, rows, names, spec.image_size, run, key)
                for split, rows in (("train", train), ("val", val), ("test", test))
            }
            mean, std = feats["train"].mean(0), feats["train"].std(0).clamp_min(1e-6)
            feats = {k: ((v - mean) / std).to(run.device) for k, v in feats.items()}
            labels = {
                k: torch.from_numpy(_labels(rows, names)).to(run.device) for k, rows in (("train", train), ("val", val))
            }
            modules, params = [head], list(head.parameters())

            def train_epoch(epoch: int, generator: torch.Generator) -> None:  # noqa: ARG001 (one signature for both modes)
                order = torch.randperm(len(train), generator=generator).to(run.device)
                for idx in order.split(int(opts.setting("batch_size"))):
                    step(loss_of(head(feats["train"][idx]), labels["train"][idx]))

            def predict(split: str) -> torch.Tensor:
                with torch.no_grad():
                    return head(feats[split])

            def val_loss() -> float:
                return float(loss_of(predict("val"), labels["val"]))
        else:
            modules, params = [encoder, head], list(encoder.parameters()) + list(head.parameters())
            train_rows = ImageRows(run.manifest_dir, train, names, spec.image_size, True, run.seed)
            train_loader = self._loader(train_rows, True, run.device, run.seed)

            def train_epoch(epoch: int, generator: torch.Generator) -> None:  # noqa: ARG001 (the loader shuffles)
                encoder.train()
                train_rows.epoch = epoch
                release = PeriodicRelease()
                for images, target in train_loader:
                    logits = head(encoder(images.to(run.device, non_blocking=True))[0])
                    step(loss_of(logits, target.to(run.device)))
                    release.tick()

            # built once: a fresh loader per validation epoch would start its worker processes again
            eval_loaders = {
                split: self._loader(
                    ImageRows(run.manifest_dir, rows, names, spec.image_size, False, 0), False, run.device, 0
                )
                for split, rows in (("val", val), ("test", test))
            }

            def predict(split: str) -> torch.Tensor:
                encoder.eval()
                out = []
                with torch.no_grad():
                    release = PeriodicRelease()
                    for images, _ in eval_loaders[split]:
                        out.append(head(encoder(images.to(run.device, non_blocking=True))[0]))
                        release.tick()
                return torch.cat(out)

            def val_loss() -> float:
                return float(loss_of(predict("val"), torch.from_numpy(_labels(val, names)).to(run.device)))

        optimizer = torch.optim.AdamW(params, lr=opts.setting("lr"), weight_decay=opts.setting("weight_decay"))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs) if mgca else None

        def step(loss: torch.Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        stopper = EarlyStopping(opts.patience)
        generator = torch.Generator().manual_seed(run.seed)
        selected = epochs
        for epoch in range(1, epochs + 1):
            train_epoch(epoch, generator)
            if schedule is not None:
                schedule.step()
            if mgca and stopper.update(epoch, val_loss(), modules):
                break
        if mgca:
            stopper.restore(modules)
            selected = stopper.best_epoch
        logits = predict("test").float()
        metric = multiclass_metrics if multiclass else _metrics
        y_test = _labels(test, names)
        probs = (torch.softmax(logits, 1) if multiclass else torch.sigmoid(logits)).cpu().numpy()
        result = metric(y_test, probs)
        for name, (low, high) in bootstrap_ci(metric, y_test, probs, seed=run.seed).items():
            result[f"{name}_ci_low"], result[f"{name}_ci_high"] = low, high
        result.update(
            {
                "train_rows": float(len(train)),
                "val_rows": float(len(val)),
                "test_rows": float(len(test)),
                "selected_epoch": float(selected),
                "image_size": float(spec.image_size),
            }
        )
        if opts.subset_lists is not None:
            result["subset_ids_missing"] = float(subset_missing)
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
    classification("covidx-cls", "covidx", "COVIDx normal/pneumonia/COVID-19 (3-class releases; ACC, macro AUROC)")
