"""Detection (MMDetection) and segmentation (MMSegmentation) tasks on our backbone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Literal

import pydantic

from cmcgns import distributed
from cmcgns.data.manifest import read_manifest, write_rows
from cmcgns.downstream.base import TaskRun, backbone_spec, training_subset
from cmcgns.errors import CmcgnsError, DataError
from cmcgns.io.atomic import write_json
from cmcgns.downstream.mm.configs import Schedule
from cmcgns.plugins import Options, Register, hookimpl


class DenseOptions(Options):
    protocol: Literal["mgca", "fast"] = pydantic.Field(
        "mgca",
        description="mgca: frozen backbone, MGCA's head, AdamW, up to `epochs` epochs with early stopping on the "
        "validation split, the best-validation state tested; fast: `iters` iterations, trained backbone, last state",
    )
    iters: int = pydantic.Field(200, ge=1, description="fast: training iterations")
    epochs: int = pydantic.Field(50, ge=1, description="mgca: maximum epochs")
    patience: int = pydantic.Field(10, ge=1, description="mgca: validations without improvement before stopping")
    lr: float = pydantic.Field(1e-3, gt=0)
    batch_size: int | None = pydantic.Field(None, ge=1, description="unset = 16 (mgca) or 8 (fast)")
    num_workers: int | None = pydantic.Field(None, ge=0, description="data-loading workers; unset = 4 (mgca) or 0")
    backbone: str = "vit_tiny_patch16_224"
    image_size: int = pydantic.Field(64, ge=32)
    subset_lists: Path | None = pydantic.Field(
        None, description="folder of <task>-f<fraction>-s<seed>.txt training-row ids to use instead of drawing"
    )
    untrained: bool = pydantic.Field(
        False,
        description="score the head as initialised, without training (the backbone still loads its weights): "
        "the floor that `beats: untrained-head` gate entries compare with",
    )

    def resolved_batch_size(self) -> int:
        return self.batch_size or (16 if self.protocol == "mgca" else 8)

    def schedule(
        self, seed: int, train_rows: int, mgca_weight_decay: float, fast_weight_decay: float = 1e-4
    ) -> Schedule:
        """The batch shrinks to the rows each process has when a small label fraction has fewer."""
        mgca = self.protocol == "mgca"
        per_process = max(1, train_rows // distributed.world_size_from_env())
        return Schedule(
            protocol=self.protocol,
            lr=self.lr,
            batch_size=min(self.resolved_batch_size(), per_process),
            seed=seed,
            weight_decay=mgca_weight_decay if mgca else fast_weight_decay,
            iters=self.iters,
            epochs=self.epochs,
            patience=self.patience,
            workers=self.num_workers if self.num_workers is not None else (4 if mgca else 0),
        )


class SegmentationOptions(DenseOptions):
    foreground_weight: Annotated[float, pydantic.Field(gt=0)] | Literal["auto"] = pydantic.Field(
        "auto",
        description="fast: cross-entropy weight of the finding class; 'auto' = background/foreground pixel ratio "
        "of the training masks, clipped to [1, 50] (findings cover a few % of the image)",
    )
    balance_train: bool | None = pydantic.Field(
        None,
        description="train on every positive image plus as many negatives (seeded); unset = on for SIIM under mgca "
        "(MGCA's SIIM protocol), off otherwise",
    )
    head_channels: int = pydantic.Field(256, ge=8, description="mgca: width of the SETR / U-Net decoder")


def foreground_weight(mask_paths: list[Path], sample: int = 400) -> float:
    """Background/foreground pixel ratio over (up to `sample`, evenly spaced) masks, clipped to [1, 50]."""
    import numpy as np
    from PIL import Image

    step = max(1, len(mask_paths) // sample)
    fg = total = 0
    for path in mask_paths[::step]:
        with Image.open(path) as im:
            mask = np.asarray(im)
        fg += int((mask == 1).sum())
        total += mask.size
    if fg == 0:
        return 1.0
    return float(min(50.0, max(1.0, (total - fg) / fg)))


def balanced_rows(rows: list[dict], label: str, seed: int) -> list[dict]:
    """MGCA's SIIM training set: every positive row plus an equal number of negatives drawn with
    `seed` (all negatives when there are fewer), in the original order."""
    import numpy as np

    positives = [i for i, r in enumerate(rows) if float(r["labels"].get(label) or 0) > 0]
    negatives = sorted(set(range(len(rows))) - set(positives))
    if len(negatives) > len(positives):
        chosen = np.random.default_rng(seed).choice(len(negatives), size=len(positives), replace=False)
        negatives = [negatives[k] for k in chosen]
    keep = set(positives) | set(negatives)
    return [r for i, r in enumerate(rows) if i in keep]


def _require_mm() -> None:
    try:
        import mmdet  # noqa: F401
        import mmseg  # noqa: F401
    except ImportError as exc:
        raise CmcgnsError(
            f"detection/segmentation need the OpenMMLab extra ({exc}); install with `make test` or pip install 'cmcgns[mm]'"
        ) from None


class DetectionTask:
    metrics = ("map_40_75", "map_40_75_mgca", "map", "map50")
    supports_torchrun = True  # mmengine shards the loaders and wraps the model in DDP

    def __init__(self, name: str, dataset: str, options: DenseOptions) -> None:
        self.name, self.dataset, self.options = name, dataset, options

    def run(self, run: TaskRun) -> dict[str, float]:
        _require_mm()
        from cmcgns.downstream.mm.components import pyramid_channels
        from cmcgns.downstream.mm.configs import detection_config
        from cmcgns.downstream.mm.runner import run_mm

        manifest = read_manifest(run.manifest_dir)
        meta = manifest.meta
        if meta.get("kind") != "detection" or "coco" not in meta:
            raise DataError(f"{run.manifest_dir}: not a detection manifest with COCO files")
        coco_train = json.loads((run.manifest_dir / meta["coco"]["train"]).read_text())
        drawn, subset_missing = training_subset(manifest.split("train"), run, self.name, self.options.subset_lists)
        keep_names = {r["image"] for r in drawn}
        images = [im for im in coco_train["images"] if im["file_name"] in keep_names]
        ids = {im["id"] for im in images}
        subset = dict(
            coco_train, images=images, annotations=[a for a in coco_train["annotations"] if a["image_id"] in ids]
        )
        run.work_dir.mkdir(parents=True, exist_ok=True)
        train_ann = (run.work_dir / "coco_train_subset.json").resolve()  # mmdet joins relative paths with data_root
        write_json(train_ann, subset)
        spec = backbone_spec(
            run.backbone_dir,
            self.options.backbone,
            self.options.image_size,
            "image_size" in self.options.model_fields_set,
        )
        coco = meta["coco"]
        anns = {"train": str(train_ann), "test": coco.get("test") or coco["val"]}
        if self.options.protocol == "mgca":
            if "val" not in coco or "test" not in coco:
                raise DataError(
                    f"{run.manifest_dir}: the mgca protocol needs val and test COCO files (found {sorted(coco)}); "
                    "re-run `cmcgns preprocess`, or use --protocol fast"
                )
            anns["val"] = coco["val"]
        schedule = self.options.schedule(run.seed, len(images), mgca_weight_decay=1e-6)
        cfg = detection_config(
            spec,
            pyramid_channels(spec.timm_name, spec.image_size),
            run.manifest_dir,
            meta["categories"],
            anns,
            schedule,
            detector="yolov3" if self.options.protocol == "mgca" else "retinanet",
        )
        metrics = run_mm(cfg, run.work_dir / "mm", run.device, train=not self.options.untrained)
        # CocoMetric returns nothing when the detector kept no box: that is an AP of 0
        return {
            "map": metrics.get("coco/bbox_mAP", 0.0),
            "map50": metrics.get("coco/bbox_mAP_50", 0.0),
            "map_40_75": metrics.get("box/map_40_75", float("nan")),
            # MGCA's computation (skips images without a kept box or a target; NaN when none is left)
            "map_40_75_mgca": metrics.get("box/map_40_75_mgca", float("nan")),
            "train_rows": float(len(images)),
            **({"subset_ids_missing": float(subset_missing)} if self.options.subset_lists else {}),
            "batch_size": float(schedule.batch_size),
            **{k: metrics[k] for k in ("selected_epoch", "trained_epochs") if k in metrics},
        }


class SegmentationTask:
    metrics = ("dice", "loss")
    supports_torchrun = True

    def __init__(self, name: str, dataset: str, options: SegmentationOptions) -> None:
        self.name, self.dataset, self.options = name, dataset, options

    def run(self, run: TaskRun) -> dict[str, float]:
        _require_mm()
        from cmcgns.downstream.mm.components import pyramid_channels
        from cmcgns.downstream.mm.configs import segmentation_config
        from cmcgns.downstream.mm.runner import run_mm

        manifest = read_manifest(run.manifest_dir)
        rows = manifest.rows
        if not any("mask" in r for r in rows):
            raise DataError(f"{run.manifest_dir}: manifest has no masks")
        # a fraction view of the manifest: same images, train rows subsampled
        view = run.work_dir / f"manifest_view{distributed.rank() or ''}"  # one per torchrun rank
        view.mkdir(parents=True, exist_ok=True)
        label = next(iter(rows[0]["labels"]))
        train, subset_missing = training_subset(
            manifest.split("train"), run, self.name, self.options.subset_lists, label
        )
        balance = self.options.balance_train
        if balance is None:
            balance = self.dataset == "siim" and self.options.protocol == "mgca"
        if balance:
            train = balanced_rows(train, label, run.seed)
        kept = train + manifest.split("val", "test")
        if self.options.protocol == "mgca" and not manifest.split("val"):
            raise DataError(
                f"{run.manifest_dir}: the mgca protocol needs a val split for early stopping; "
                "re-run `cmcgns preprocess`, or use --protocol fast"
            )
        viewed = Path(run.manifest_dir).resolve()
        absolute = [dict(r, image=str(viewed / r["image"]), mask=str(viewed / r["mask"])) for r in kept]
        write_rows(view, absolute, {**manifest.meta, "view_of": str(viewed)})
        spec = backbone_spec(
            run.backbone_dir,
            self.options.backbone,
            self.options.image_size,
            "image_size" in self.options.model_fields_set,
        )
        weight = self.options.foreground_weight
        if weight == "auto":
            weight = foreground_weight([run.manifest_dir / r["mask"] for r in train])
        schedule = self.options.schedule(run.seed, len(train), mgca_weight_decay=0.05)
        cfg = segmentation_config(
            spec,
            pyramid_channels(spec.timm_name, spec.image_size),
            view,
            schedule,
            weight,
            self.options.head_channels,
        )
        metrics = run_mm(cfg, run.work_dir / "mm", run.device, train=not self.options.untrained)
        shutil.rmtree(view, ignore_errors=True)
        return {
            "dice": metrics.get("seg/dice", float("nan")),
            "loss": metrics.get("seg/loss", float("nan")),
            "train_rows": float(len(train)),
            **({"subset_ids_missing": float(subset_missing)} if self.options.subset_lists else {}),
            "batch_size": float(schedule.batch_size),
            **({"foreground_weight": float(weight)} if self.options.protocol == "fast" else {}),
            **{k: metrics[k] for k in ("selected_epoch", "trained_epochs") if k in metrics},
        }


@hookimpl
def register_downstream_tasks(register: Register) -> None:
    register(
        "rsna-det",
        lambda options: DetectionTask("rsna-det", "rsna", options),
        options=DenseOptions,
        description="RSNA opacity detection via MMDetection: YOLOv3 on the frozen backbone (mgca) or RetinaNet (fast)",
    )
    register(
        "objectcxr-det",
        lambda options: DetectionTask("objectcxr-det", "object-cxr", options),
        options=DenseOptions,
        description="Object-CXR foreign objects via MMDetection: YOLOv3 on the frozen backbone (mgca) or RetinaNet (fast)",
    )
    register(
        "siim-seg",
        lambda options: SegmentationTask("siim-seg", "siim", options),
        options=SegmentationOptions,
        description="SIIM pneumothorax segmentation via MMSegmentation: SETR/U-Net on the frozen encoder, balanced training set (mgca), or FCN (fast); per-image Dice",
    )
    register(
        "rsna-seg",
        lambda options: SegmentationTask("rsna-seg", "rsna", options),
        options=SegmentationOptions,
        description="RSNA opacity box masks via MMSegmentation: SETR/U-Net on the frozen encoder (mgca) or FCN (fast); per-image Dice",
    )
