"""OpenMMLab components of cmcgns, loaded by mm configs through
``custom_imports=dict(imports=['cmcgns.downstream.mm.components'])``.

Importing this module registers (the OpenMMLab convention; nothing is copied into the
installed mm packages):
- ``CMCGNSBackbone`` in mmdet's and mmseg's MODELS: our timm ViT/ResNet encoder returning a
  feature pyramid; ``checkpoint=`` a backbone.safetensors export, loaded by the backbone itself
  (safetensors, strict keys: no pickle path whatever torch's environment says);
- ``CMCGNSSegDataset`` in mmseg's DATASETS: reads a cmcgns segmentation manifest split;
- ``ForegroundDice`` in mmseg's METRICS: Dice of the finding class over the whole split.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import numpy as np
from mmdet.registry import METRICS as DET_METRICS
from mmdet.registry import MODELS as DET_MODELS
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModule
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS as SEG_DATASETS
from mmseg.registry import METRICS as SEG_METRICS
from mmseg.registry import MODELS as SEG_MODELS

from cmcgns.downstream.metrics import detection_map, dice_per_image


def pyramid_channels(timm_name: str, image_size: int) -> list[int]:
    import timm

    model = timm.create_model(
        timm_name,
        pretrained=False,
        num_classes=0,
        **({"img_size": image_size} if timm_name.startswith(("vit", "deit")) else {}),
    )
    if hasattr(model, "blocks"):
        return [model.num_features] * 3
    return [info["num_chs"] for info in model.feature_info[-3:]]


class CMCGNSBackbone(BaseModule):
    """timm encoder as an mm backbone. ViT patch tokens become a simple 3-level pyramid
    (strides p/2, p, 2p); ResNets return their last three stages."""

    def __init__(
        self, timm_name: str, image_size: int, checkpoint: str | None = None, frozen: bool = False, init_cfg=None
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        kwargs = {"img_size": image_size} if timm_name.startswith(("vit", "deit")) else {}
        self.encoder = timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
        self.is_vit = hasattr(self.encoder, "blocks")
        self.checkpoint = checkpoint
        self.frozen = frozen  # MGCA's detection protocol: the pretrained encoder is not trained
        if frozen:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.encoder.eval()  # frozen means eval-mode statistics too (BatchNorm, dropout)
        return self

    def init_weights(self) -> None:
        """Load the export (mmengine calls this after building the model; the children's own
        init_weights, e.g. timm's, would re-randomise them)."""
        if not self.checkpoint:
            super().init_weights()
            return
        from safetensors.torch import load_file

        from cmcgns.models.image_encoder import fit_position_embedding

        state = fit_position_embedding(load_file(self.checkpoint), self.encoder, self.checkpoint)
        missing, unexpected = self.encoder.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"{self.checkpoint}: keys do not match {type(self.encoder).__name__} "
                f"({len(missing)} missing, e.g. {missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})"
            )
        self._is_init = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.is_vit:
            tokens = self.encoder.forward_features(x)[:, getattr(self.encoder, "num_prefix_tokens", 1) :]
            b, n, d = tokens.shape
            g = int(round(n**0.5))
            fmap = tokens.transpose(1, 2).reshape(b, d, g, g)
            return (
                F.interpolate(fmap, scale_factor=2.0, mode="bilinear", align_corners=False),
                fmap,
                F.max_pool2d(fmap, 2),
            )
        feats = self.encoder.forward_intermediates(x, intermediates_only=True)
        return tuple(feats[-3:])


for _registry in (DET_MODELS, SEG_MODELS):
    if "CMCGNSBackbone" not in _registry.module_dict:
        _registry.register_module(module=CMCGNSBackbone)


class CMCGNSSegDataset(BaseSegDataset):
    METAINFO = dict(classes=("background", "finding"), palette=[[0, 0, 0], [255, 0, 0]])

    def __init__(self, manifest_dir: str, split: str, **kwargs) -> None:
        self.manifest_dir = Path(manifest_dir)
        self.split = split
        super().__init__(data_root=str(manifest_dir), ann_file="", **kwargs)

    def load_data_list(self) -> list[dict]:
        from cmcgns.data.manifest import read_manifest

        rows = read_manifest(self.manifest_dir).split(self.split)
        return [
            dict(
                img_path=str(self.manifest_dir / r["image"]),
                seg_map_path=str(self.manifest_dir / r["mask"]),
                label_map=None,
                reduce_zero_label=False,
                seg_fields=[],
                sample_idx=i,
            )
            for i, r in enumerate(rows)
        ]


if "CMCGNSSegDataset" not in SEG_DATASETS.module_dict:
    SEG_DATASETS.register_module(module=CMCGNSSegDataset)


class ForegroundDice(BaseMetric):
    """Mean per-image Dice of the finding class (MGCA's segmentation metric): an image without a
    finding scores 1 when nothing is predicted, else 0."""

    default_prefix = "seg"

    def process(self, data_batch, data_samples) -> None:  # noqa: ARG002 (mmengine's signature)
        for sample in data_samples:
            pred = (sample["pred_sem_seg"]["data"].squeeze().cpu() == 1).numpy()
            gt = (sample["gt_sem_seg"]["data"].squeeze().cpu() == 1).numpy()
            self.results.append(dice_per_image(pred.astype(float), gt.astype(float)))

    def compute_metrics(self, results) -> dict[str, float]:
        return {"dice": float(sum(results) / len(results)) if results else float("nan")}


class BoxMAP(BaseMetric):
    """MGCA's detection metric: mean AP over IoU 0.40, 0.45, ..., 0.75 of the predictions with
    confidence >= 0.5 (after the detector's NMS), single class."""

    default_prefix = "box"

    def process(self, data_batch, data_samples) -> None:  # noqa: ARG002 (mmengine's signature)
        for sample in data_samples:
            pred = sample["pred_instances"]
            boxes = pred["bboxes"].cpu().numpy()
            gt = sample["gt_instances"]["bboxes"]
            gt = gt.tensor if hasattr(gt, "tensor") else gt
            gt = gt.cpu().numpy().reshape(-1, 4)
            xywh = lambda b: np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)  # noqa: E731
            self.results.append(((xywh(boxes.reshape(-1, 4)), pred["scores"].cpu().numpy()), xywh(gt)))

    def compute_metrics(self, results) -> dict[str, float]:
        return {"map_40_75": detection_map([r[0] for r in results], [r[1] for r in results])}


if "ForegroundDice" not in SEG_METRICS.module_dict:
    SEG_METRICS.register_module(module=ForegroundDice)
if "BoxMAP" not in DET_METRICS.module_dict:
    DET_METRICS.register_module(module=BoxMAP)
