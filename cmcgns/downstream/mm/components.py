"""OpenMMLab components of cmcgns, loaded by mm configs through
``custom_imports=dict(imports=['cmcgns.downstream.mm.components'])``.

Importing this module registers (the OpenMMLab convention; nothing is copied into the
installed mm packages):
- ``CMCGNSBackbone`` in mmdet's and mmseg's MODELS: our timm ViT/ResNet encoder returning a
  feature pyramid; ``checkpoint=`` a backbone.safetensors export, loaded by the backbone itself
  (safetensors, strict keys: no pickle path whatever torch's environment says);
- ``CMCGNSSegDataset`` in mmseg's DATASETS: reads a cmcgns segmentation manifest split;
- ``BoxMAP`` in mmdet's METRICS: MGCA's mean AP over IoU 0.40-0.75 at confidence 0.5;
- through ``segmentation_parts``: MGCA's segmentation loss, a U-Net-style head and the per-image
  Dice / loss metric.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch
import torch.nn.functional as F
import numpy as np
from mmdet.registry import METRICS as DET_METRICS
from mmdet.registry import MODELS as DET_MODELS
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from mmengine.model import BaseModule
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS as SEG_DATASETS
from mmseg.registry import MODELS as SEG_MODELS

from cmcgns.downstream.metrics import detection_map, mgca_detection_map
from cmcgns.downstream.mm import segmentation_parts  # noqa: F401 (registers MGCA's segmentation loss, head, metric)


def pyramid_levels(timm_name: str, image_size: int) -> list[tuple[int, int]]:
    """(channels, stride) of each level CMCGNSBackbone returns with its default out_indices: a ViT
    with patch p gives its patch grid at strides p/2, p, 2p (768 channels each for ViT-B); a CNN its
    last three stages (ResNet-50: 512, 1024, 2048 at 8, 16, 32)."""
    return list(_built_pyramid_levels(timm_name, image_size))


@functools.lru_cache(maxsize=16)  # a timm model is built to read them: the config and the neck check both ask
def _built_pyramid_levels(timm_name: str, image_size: int) -> tuple[tuple[int, int], ...]:
    import timm

    model = timm.create_model(
        timm_name,
        pretrained=False,
        num_classes=0,
        **({"img_size": image_size} if timm_name.startswith(("vit", "deit")) else {}),
    )
    if hasattr(model, "blocks"):
        patch = model.patch_embed.patch_size[0]
        return ((model.num_features, patch // 2), (model.num_features, patch), (model.num_features, 2 * patch))
    return tuple((info["num_chs"], info["reduction"]) for info in model.feature_info[-3:])


def pyramid_channels(timm_name: str, image_size: int) -> list[int]:
    return [channels for channels, _ in pyramid_levels(timm_name, image_size)]


def check_neck_matches_backbone(model_cfg: dict) -> None:
    """One line instead of mmdet's bare AssertionError at the first forward: a neck whose
    `in_channels` does not list the channels of the levels CMCGNSBackbone returns."""
    from cmcgns.errors import ConfigError

    backbone, neck = model_cfg.get("backbone") or {}, model_cfg.get("neck")
    if backbone.get("type") != "CMCGNSBackbone" or not isinstance(neck, dict) or "in_channels" not in neck:
        return
    levels = pyramid_levels(backbone["timm_name"], backbone["image_size"])
    indices = list(backbone.get("out_indices", range(len(levels))))
    chosen = [levels[i] for i in indices]
    expected = [channels for channels, _ in chosen]
    given = neck["in_channels"]
    given = list(given) if isinstance(given, (list, tuple)) else [given]
    if given != expected:
        raise ConfigError(
            f"model.neck.in_channels is {given}, but CMCGNSBackbone({backbone['timm_name']}, out_indices={indices}) "
            f"returns {len(chosen)} level(s) with channels {expected} at strides {[s for _, s in chosen]}; "
            f"set in_channels={expected}, or pick levels with backbone out_indices (e.g. out_indices=[1] for one)"
        )


class CMCGNSBackbone(BaseModule):
    """timm encoder as an mm backbone. ViT patch tokens become a simple 3-level pyramid
    (strides p/2, p, 2p, the encoder's width each); CNNs return their last three stages
    (pyramid_levels lists channels and strides). `out_indices` picks levels, e.g. (1,) for a
    one-level neck at stride p."""

    def __init__(
        self,
        timm_name: str,
        image_size: int,
        checkpoint: str | None = None,
        frozen: bool = False,
        out_indices: tuple[int, ...] = (0, 1, 2),
        init_cfg=None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        self.out_indices = tuple(out_indices)
        if not self.out_indices or any(i not in (0, 1, 2) for i in self.out_indices):
            raise ValueError(f"CMCGNSBackbone out_indices must be a non-empty subset of (0, 1, 2), got {out_indices}")

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
        from cmcgns.io.weights import read_safetensors
        from cmcgns.models.image_encoder import fit_position_embedding

        state = fit_position_embedding(read_safetensors(self.checkpoint), self.encoder, self.checkpoint)
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
            levels = (
                F.interpolate(fmap, scale_factor=2.0, mode="bilinear", align_corners=False),
                fmap,
                F.max_pool2d(fmap, 2),
            )
        else:
            levels = tuple(self.encoder.forward_intermediates(x, intermediates_only=True)[-3:])
        return tuple(levels[i] for i in self.out_indices)


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


class BoxMAP(BaseMetric):
    """Mean AP over IoU 0.40, 0.45, ..., 0.75 of the predictions with confidence >= 0.5 (after the
    detector's NMS), single class: ours over every image (`map_40_75`) and MGCA's computation
    (`map_40_75_mgca`, skipped images and 101 recall points)."""

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
        predictions, targets = [r[0] for r in results], [r[1] for r in results]
        return {  # ours counts every image; MGCA's skips some (cmcgns.downstream.metrics)
            "map_40_75": detection_map(predictions, targets),
            "map_40_75_mgca": mgca_detection_map(predictions, targets),
        }


class BestValidationState(Hook):
    """Keeps (in host memory) the model state of the validation with the best `monitor` value and
    restores it when training ends, so that the test scores the best-validation state (MGCA's
    selection rule). No checkpoint file: mmengine's pickle carries objects that a weights-only
    load refuses, and the test runs in the same process anyway."""

    priority = "LOW"

    def __init__(self, monitor: str, rule: str) -> None:
        if rule not in ("greater", "less"):
            raise ValueError(f"rule must be 'greater' or 'less', got {rule!r}")
        self.monitor, self.rule = monitor, rule
        self.best: float | None = None
        self.epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not metrics or self.monitor not in metrics:
            raise KeyError(f"validation returned no {self.monitor!r} (got {sorted(metrics or {})})")
        value = float(metrics[self.monitor])
        if math.isnan(value):
            return
        better = self.best is None or (value > self.best if self.rule == "greater" else value < self.best)
        if better:
            self.best, self.epoch = value, runner.epoch
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in runner.model.state_dict().items()}

    def after_train(self, runner) -> None:
        if self.state is not None:
            runner.model.load_state_dict(self.state)


class DeviceRunner(Runner):
    """mmengine's Runner on the device the user chose: mmengine itself always takes the GPU when
    there is one, and its DDP wrapper always passes a GPU index (which a CPU model refuses)."""

    device = "cpu"

    @classmethod
    def on(cls, device: str) -> type[DeviceRunner]:
        return type(cls.__name__, (cls,), {"device": device})

    def wrap_model(self, model_wrapper_cfg, model):
        if self.device.startswith("cuda"):
            if self.device != "cuda":  # cuda:N
                torch.cuda.set_device(torch.device(self.device))
            return super().wrap_model(model_wrapper_cfg, model)
        model = model.to("cpu")
        if not self.distributed:
            return model
        from mmengine.model import MMDistributedDataParallel

        return MMDistributedDataParallel(module=model, device_ids=None, broadcast_buffers=False)


if "BestValidationState" not in HOOKS.module_dict:
    HOOKS.register_module(module=BestValidationState)
if "BoxMAP" not in DET_METRICS.module_dict:
    DET_METRICS.register_module(module=BoxMAP)
