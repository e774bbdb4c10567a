"""mm config dicts for detection (YOLOv3 or RetinaNet) and segmentation (U-Net/SETR or FCN) on
our backbone, under MGCA's epoch schedule or the quick fixed-iteration one."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from cmcgns.export import BackboneExport
from cmcgns.downstream.mm.runner import COMPONENTS_MODULE


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How a dense task trains. `mgca`: up to `epochs` epochs, validation after each, early stopping
    after `patience` validations without improvement, the best-validation state tested. `fast`:
    `iters` iterations, no validation, the last state tested."""

    protocol: str
    lr: float
    batch_size: int
    seed: int
    weight_decay: float
    iters: int = 200
    epochs: int = 50
    patience: int = 10
    workers: int = 0

    def base(self, monitor: str, rule: str) -> dict[str, Any]:
        if self.protocol == "mgca":
            return _epoch_schedule(self.epochs, self.patience, self.lr, self.seed, self.weight_decay, monitor, rule)
        return _schedule(self.iters, self.lr, self.seed, self.weight_decay)

    def loader(self, dataset: dict[str, Any], train: bool, collate: str | None = None) -> dict[str, Any]:
        loader = _loader(dataset, self.batch_size, train, collate, self.workers, infinite=self.protocol != "mgca")
        if train and self.protocol == "mgca":
            # a last batch of one image would break BatchNorm in the heads (and is a noisy step anyway);
            # the shuffle drops different images each epoch
            loader["drop_last"] = True
        return loader


def _pixels(spec: BackboneExport) -> dict[str, list[float]]:
    """The export's normalisation in mm's 0-255 pixel units."""
    return dict(mean=[m * 255 for m in spec.mean], std=[s * 255 for s in spec.std])


def _backbone(spec: BackboneExport) -> dict[str, Any]:
    # the backbone reads the safetensors export itself (strict keys, no pickle); None = random init
    return dict(
        type="CMCGNSBackbone",
        timm_name=spec.timm_name,
        image_size=spec.image_size,
        checkpoint=str(spec.timm_file) if spec.timm_file else None,
    )


def _schedule(iters: int, lr: float, seed: int, weight_decay: float = 1e-4) -> dict[str, Any]:
    return dict(
        custom_imports=dict(imports=[COMPONENTS_MODULE], allow_failed_imports=False),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1),
        test_cfg=dict(type="TestLoop"),
        optim_wrapper=dict(
            type="OptimWrapper",
            optimizer=dict(type="AdamW", lr=lr, weight_decay=weight_decay),
            clip_grad=dict(max_norm=10.0),
        ),
        param_scheduler=[dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=max(1, iters // 10))],
        default_hooks=dict(
            timer=dict(type="IterTimerHook"),
            logger=dict(type="LoggerHook", interval=max(1, iters // 4)),
            param_scheduler=dict(type="ParamSchedulerHook"),
            checkpoint=None,  # the run is tested in the same process: no checkpoint files
        ),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
        randomness=dict(seed=seed, deterministic=False),
        log_level="WARNING",
        launcher="none",
    )


def _epoch_schedule(
    epochs: int, patience: int, lr: float, seed: int, weight_decay: float, monitor: str, rule: str
) -> dict[str, Any]:
    """MGCA's dense schedule: up to `epochs` epochs with a cosine learning rate, validation after
    every epoch, early stopping when `monitor` has not improved for `patience` validations, and the
    best-validation state kept in memory and restored before the test (BestValidationState)."""
    cfg = _schedule(1, lr, seed, weight_decay)
    cfg.update(
        train_cfg=dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=1),
        val_cfg=dict(type="ValLoop"),
        param_scheduler=[dict(type="CosineAnnealingLR", T_max=epochs, eta_min=0.0, by_epoch=True, begin=0, end=epochs)],
        custom_hooks=[
            dict(type="EarlyStoppingHook", monitor=monitor, rule=rule, patience=patience, min_delta=0.0),
            dict(type="BestValidationState", monitor=monitor, rule=rule),
        ],
        # mmengine logs every key containing "loss" as a mean over the last 10 values: the validation
        # metrics (seg/..., box/...) are logged as measured, the value early stopping compares
        log_processor=dict(by_epoch=True, mean_pattern=r"^(?!(seg|box)/).*(loss|time|data_time|grad_norm).*"),
    )
    cfg["default_hooks"].update(logger=dict(type="LoggerHook", interval=10))
    return cfg


def _loader(
    dataset: dict[str, Any],
    batch_size: int,
    train: bool,
    collate: str | None = None,
    workers: int = 0,
    infinite: bool = True,
) -> dict[str, Any]:
    if train:
        sampler = dict(type="InfiniteSampler" if infinite else "DefaultSampler", shuffle=True)
    else:
        sampler = dict(type="DefaultSampler", shuffle=False)
    loader = dict(
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=workers > 0,
        dataset=dataset,
        sampler=sampler,
    )
    if collate:
        loader["collate_fn"] = dict(type=collate)
    return loader


def detection_config(
    spec: BackboneExport,
    channels: list[int],
    manifest_dir: Path,
    categories: list[str],
    anns: dict[str, str],
    schedule: Schedule,
    detector: str = "retinanet",
) -> dict[str, Any]:
    """`anns`: COCO files for `train`, `test` and (under mgca, for early stopping) `val`."""
    size = spec.image_size
    meta = dict(classes=tuple(categories))
    train_pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(type="Resize", scale=(size, size), keep_ratio=False),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PackDetInputs"),
    ]
    test_pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=(size, size), keep_ratio=False),
        dict(type="LoadAnnotations", with_bbox=True),
        dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")),
    ]

    def dataset(ann: str, pipeline, test: bool):
        return dict(
            type="CocoDataset",
            data_root=str(manifest_dir),
            ann_file=ann,
            data_prefix=dict(img=""),
            metainfo=meta,
            filter_cfg=dict(filter_empty_gt=False),
            pipeline=pipeline,
            test_mode=test,
        )

    strides = [8, 16, 32]  # both pyramids (ViT p/2, p, 2p with p=16; ResNet stages 3-5)
    if detector == "yolov3":
        model = yolov3_model(spec, channels, len(categories), size)
    else:
        model = retinanet_model(spec, channels, len(categories), strides)
    cfg = schedule.base(monitor="box/map_40_75", rule="greater")
    cfg.update(
        model=model,
        train_dataloader=schedule.loader(dataset(anns["train"], train_pipeline, False), True),
        test_dataloader=schedule.loader(dataset(anns["test"], test_pipeline, True), False),
        test_evaluator=[
            dict(type="CocoMetric", ann_file=str(manifest_dir / anns["test"]), metric="bbox", format_only=False),
            dict(type="BoxMAP"),
        ],
        default_scope="mmdet",
    )
    if schedule.protocol == "mgca":
        cfg.update(
            val_dataloader=schedule.loader(dataset(anns["val"], test_pipeline, True), False),
            val_evaluator=dict(type="BoxMAP"),
        )
    return cfg


def yolov3_model(spec: BackboneExport, channels: list[int], num_classes: int, size: int) -> dict[str, Any]:
    """MGCA's detector: YOLOv3 neck and head on the frozen backbone's three levels (strides 8/16/32);
    the COCO anchors are scaled from YOLOv3's 416 px input to this image size."""
    scale = size / 416.0
    coco_anchors = [
        [(116, 90), (156, 198), (373, 326)],
        [(30, 61), (62, 45), (59, 119)],
        [(10, 13), (16, 30), (33, 23)],
    ]
    anchors = [[(max(1, round(w * scale)), max(1, round(h * scale))) for w, h in level] for level in coco_anchors]
    deep_first = list(reversed(channels))
    return dict(
        type="YOLOV3",
        data_preprocessor=dict(type="DetDataPreprocessor", **_pixels(spec), bgr_to_rgb=True, pad_size_divisor=32),
        backbone=dict(_backbone(spec), frozen=True),
        neck=dict(type="YOLOV3Neck", num_scales=3, in_channels=deep_first, out_channels=[128, 64, 32]),
        bbox_head=dict(
            type="YOLOV3Head",
            num_classes=num_classes,
            in_channels=[128, 64, 32],
            out_channels=[256, 128, 64],
            anchor_generator=dict(type="YOLOAnchorGenerator", base_sizes=anchors, strides=[32, 16, 8]),
            bbox_coder=dict(type="YOLOBBoxCoder"),
            featmap_strides=[32, 16, 8],
            loss_cls=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0, reduction="sum"),
            loss_conf=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0, reduction="sum"),
            loss_xy=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=2.0, reduction="sum"),
            loss_wh=dict(type="MSELoss", loss_weight=2.0, reduction="sum"),
        ),
        train_cfg=dict(assigner=dict(type="GridAssigner", pos_iou_thr=0.5, neg_iou_thr=0.5, min_pos_iou=0)),
        test_cfg=dict(
            nms_pre=1000,
            min_bbox_size=0,
            score_thr=0.05,
            conf_thr=0.005,
            nms=dict(type="nms", iou_threshold=0.5),
            max_per_img=100,
        ),
    )


def retinanet_model(spec: BackboneExport, channels: list[int], num_classes: int, strides: list[int]) -> dict[str, Any]:
    model = dict(
        type="RetinaNet",
        data_preprocessor=dict(type="DetDataPreprocessor", **_pixels(spec), bgr_to_rgb=True, pad_size_divisor=32),
        backbone=_backbone(spec),
        neck=dict(type="FPN", in_channels=channels, out_channels=64, start_level=0, num_outs=3),
        bbox_head=dict(
            type="RetinaHead",
            num_classes=num_classes,
            in_channels=64,
            stacked_convs=2,
            feat_channels=64,
            anchor_generator=dict(
                type="AnchorGenerator",
                octave_base_scale=2,
                scales_per_octave=3,
                ratios=[0.5, 1.0, 2.0],
                strides=strides,
            ),
            bbox_coder=dict(type="DeltaXYWHBBoxCoder", target_means=[0.0] * 4, target_stds=[1.0] * 4),
            loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=dict(type="L1Loss", loss_weight=1.0),
        ),
        train_cfg=dict(
            assigner=dict(type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1),
            sampler=dict(type="PseudoSampler"),
            allowed_border=-1,
            pos_weight=-1,
            debug=False,
        ),
        test_cfg=dict(
            nms_pre=200, min_bbox_size=0, score_thr=0.01, nms=dict(type="nms", iou_threshold=0.5), max_per_img=20
        ),
    )
    return model


def segmentation_config(
    spec: BackboneExport,
    channels: list[int],
    manifest_dir: Path,
    schedule: Schedule,
    foreground_weight: float = 5.0,
    head_channels: int = 256,
) -> dict[str, Any]:
    """mgca: MGCA's protocol, the frozen encoder under a SETR-PUP head (ViT) or a U-Net-style
    decoder (ResNet), one sigmoid channel trained with 10 x focal - log(Dice), early stopping on the
    validation loss. fast: an FCN head on the stride-8 level, trainable backbone, weighted CE + Dice."""
    size = spec.image_size
    train_pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="LoadAnnotations"),
        dict(type="Resize", scale=(size, size), keep_ratio=False),
        dict(type="RandomFlip", prob=0.5),
        dict(type="PackSegInputs"),
    ]
    test_pipeline = [
        dict(type="LoadImageFromFile"),
        dict(type="Resize", scale=(size, size), keep_ratio=False),
        dict(type="LoadAnnotations"),
        dict(type="PackSegInputs"),
    ]

    def dataset(split: str, pipeline):
        return dict(type="CMCGNSSegDataset", manifest_dir=str(manifest_dir), split=split, pipeline=pipeline)

    mgca = schedule.protocol == "mgca"
    model = dict(
        type="EncoderDecoder",
        data_preprocessor=dict(
            type="SegDataPreProcessor", **_pixels(spec), bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(size, size)
        ),
        backbone=dict(_backbone(spec), frozen=True) if mgca else _backbone(spec),
        decode_head=mgca_segmentation_head(spec, channels, head_channels)
        if mgca
        else fcn_head(channels, foreground_weight),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )
    cfg = schedule.base(monitor="seg/loss", rule="less")
    cfg.update(
        model=model,
        train_dataloader=schedule.loader(dataset("train", train_pipeline), True, "pseudo_collate"),
        test_dataloader=schedule.loader(dataset("test", test_pipeline), False, "pseudo_collate"),
        test_evaluator=dict(type="PerImageDiceAndLoss"),
        default_scope="mmseg",
    )
    if mgca:
        cfg.update(
            val_dataloader=schedule.loader(dataset("val", test_pipeline), False, "pseudo_collate"),
            val_evaluator=dict(type="PerImageDiceAndLoss"),
        )
    return cfg


def mgca_segmentation_head(spec: BackboneExport, channels: list[int], head_channels: int) -> dict[str, Any]:
    common = dict(
        channels=head_channels,
        num_classes=2,
        out_channels=1,
        threshold=0.5,
        dropout_ratio=0.0,
        align_corners=False,
        norm_cfg=dict(type="BN", requires_grad=True),
        loss_decode=dict(type="MixedFocalDiceLoss"),
    )
    if spec.timm_name.startswith(("vit", "deit")):
        # SETR-PUP: the stride-16 token map, four conv + x2 upsampling steps back to the input size
        return dict(type="SETRUPHead", in_channels=channels[1], in_index=1, num_convs=4, up_scale=2, **common)
    return dict(type="CMCGNSUNetHead", in_channels=channels, in_index=[0, 1, 2], **common)


def fcn_head(channels: list[int], foreground_weight: float) -> dict[str, Any]:
    return dict(
        type="FCNHead",
        in_channels=channels[0],
        in_index=0,
        channels=64,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=2,
        align_corners=False,
        loss_decode=[
            dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, class_weight=[1.0, foreground_weight]),
            dict(type="DiceLoss", loss_weight=1.0),
        ],
    )
