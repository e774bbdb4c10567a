"""mm config dicts for detection (RetinaNet + FPN) and segmentation (FCN) on our backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cmcgns.export import BackboneExport
from cmcgns.downstream.mm.runner import COMPONENTS_MODULE


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
            checkpoint=dict(type="CheckpointHook", interval=iters, by_epoch=False, max_keep_ckpts=1),
        ),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo")),
        randomness=dict(seed=seed, deterministic=False),
        log_level="WARNING",
        launcher="none",
    )


def _loader(dataset: dict[str, Any], batch_size: int, train: bool, collate: str | None = None) -> dict[str, Any]:
    loader = dict(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        dataset=dataset,
        sampler=dict(type="InfiniteSampler", shuffle=True) if train else dict(type="DefaultSampler", shuffle=False),
    )
    if collate:
        loader["collate_fn"] = dict(type=collate)
    return loader


def detection_config(
    spec: BackboneExport,
    channels: list[int],
    manifest_dir: Path,
    categories: list[str],
    train_ann: str,
    test_ann: str,
    iters: int,
    lr: float,
    batch_size: int,
    seed: int,
    detector: str = "retinanet",
    weight_decay: float = 1e-4,
) -> dict[str, Any]:
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
    cfg = _schedule(iters, lr, seed, weight_decay)
    cfg.update(
        model=model,
        train_dataloader=_loader(dataset(train_ann, train_pipeline, False), batch_size, True),
        test_dataloader=_loader(dataset(test_ann, test_pipeline, True), batch_size, False),
        test_evaluator=[
            dict(type="CocoMetric", ann_file=str(manifest_dir / test_ann), metric="bbox", format_only=False),
            dict(type="BoxMAP"),
        ],
        default_scope="mmdet",
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
    iters: int,
    lr: float,
    batch_size: int,
    seed: int,
    foreground_weight: float = 5.0,
) -> dict[str, Any]:
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

    model = dict(
        type="EncoderDecoder",
        data_preprocessor=dict(
            type="SegDataPreProcessor", **_pixels(spec), bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(size, size)
        ),
        backbone=_backbone(spec),
        decode_head=dict(
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
                dict(
                    type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, class_weight=[1.0, foreground_weight]
                ),
                dict(type="DiceLoss", loss_weight=1.0),
            ],
        ),
        train_cfg=dict(),
        test_cfg=dict(mode="whole"),
    )
    cfg = _schedule(iters, lr, seed)
    cfg.update(
        model=model,
        train_dataloader=_loader(dataset("train", train_pipeline), batch_size, True, "pseudo_collate"),
        test_dataloader=_loader(dataset("test", test_pipeline), batch_size, False, "pseudo_collate"),
        test_evaluator=dict(type="ForegroundDice"),
        default_scope="mmseg",
    )
    return cfg
