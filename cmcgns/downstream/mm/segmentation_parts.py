"""MGCA's segmentation protocol as MMSegmentation components (registered on import; loaded through
the components module named in ``custom_imports``):

- ``MixedFocalDiceLoss``: MGCA's MixedLoss, ``10 x focal(gamma=2) - log(soft Dice)`` on one
  sigmoid channel (pixels labelled ``ignore_index`` are left out);
- ``CMCGNSUNetHead``: a U-Net-style decoder over the backbone's three pyramid levels (the ResNet
  path; the ViT path uses mmseg's own ``SETRUPHead``);
- ``PerImageDiceAndLoss``: the validation/test metric, per-image Dice at threshold 0.5 (an empty
  mask scores 1 when nothing is predicted, else 0) and the mixed loss per image, which early
  stopping monitors. Only two floats per image are kept, whatever the split's size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.evaluator import BaseMetric
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import METRICS, MODELS

from cmcgns.downstream.metrics import dice_per_image

FOCAL_WEIGHT = 10.0  # MGCA: MixedLoss(alpha=10)
FOCAL_GAMMA = 2.0


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Mean over pixels of (1 - p_t)^gamma * BCE, computed in log space (stable for large logits)."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    log_one_minus_pt = F.logsigmoid(-logits * (2.0 * target - 1.0))  # log(1 - p_t)
    return (torch.exp(gamma * log_one_minus_pt) * bce).mean()


def soft_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """(2|P.T| + 1) / (|P| + |T| + 1) over every pixel given, P = sigmoid(logits)."""
    p = torch.sigmoid(logits).reshape(-1)
    t = target.reshape(-1)
    return (2.0 * (p * t).sum() + smooth) / (p.sum() + t.sum() + smooth)


def mixed_focal_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MGCA's segmentation loss: 10 x focal - log(soft Dice)."""
    return FOCAL_WEIGHT * binary_focal_loss(logits, target) - torch.log(soft_dice(logits, target))


class MixedFocalDiceLoss(nn.Module):
    def __init__(self, loss_weight: float = 1.0, loss_name: str = "loss_focal_dice") -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self._loss_name = loss_name

    def forward(self, seg_logits, seg_label, weight=None, ignore_index=255, **kwargs):  # noqa: ARG002 (mmseg's call)
        if seg_logits.shape[1] != 1:
            raise ValueError(f"MixedFocalDiceLoss takes one sigmoid channel, got {seg_logits.shape[1]}")
        logits = seg_logits[:, 0]
        keep = seg_label != ignore_index
        target = (seg_label == 1).to(logits.dtype)
        return self.loss_weight * mixed_focal_dice_loss(logits[keep], target[keep])

    @property
    def loss_name(self) -> str:
        return self._loss_name


class CMCGNSUNetHead(BaseDecodeHead):
    """U-Net-style decoder: from the deepest of the three levels, upsample x2, concatenate the next
    shallower level, two 3x3 conv-BN-ReLU blocks; twice. The stride-8 output is resized to the
    input by the segmentor, as mmseg does for every head."""

    def __init__(self, **kwargs) -> None:
        super().__init__(input_transform="multiple_select", **kwargs)
        deep_first = list(reversed(self.in_channels))
        self.reduce = ConvModule(
            deep_first[0], self.channels, 1, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg, conv_cfg=self.conv_cfg
        )
        self.up_blocks = nn.ModuleList()
        for skip in deep_first[1:]:
            self.up_blocks.append(
                nn.Sequential(
                    ConvModule(self.channels + skip, self.channels, 3, padding=1, norm_cfg=self.norm_cfg),
                    ConvModule(self.channels, self.channels, 3, padding=1, norm_cfg=self.norm_cfg),
                )
            )

    def forward(self, inputs):
        levels = list(reversed(self._transform_inputs(inputs)))  # deepest first
        x = self.reduce(levels[0])
        for block, skip in zip(self.up_blocks, levels[1:], strict=True):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=self.align_corners)
            x = block(torch.cat([x, skip], dim=1))
        return self.cls_seg(x)


class PerImageDiceAndLoss(BaseMetric):
    """``dice``: mean per-image Dice of the finding at threshold 0.5; ``loss``: mean per-image
    mixed focal-Dice loss (from the segmentor's sigmoid output), monitored by early stopping."""

    default_prefix = "seg"

    def process(self, data_batch, data_samples) -> None:  # noqa: ARG002 (mmengine's signature)
        for sample in data_samples:
            prob = sample["seg_logits"]["data"].squeeze(0).float().cpu()
            gt = sample["gt_sem_seg"]["data"].squeeze(0).cpu()
            keep = gt != 255
            target = (gt == 1).float()
            pred = (sample["pred_sem_seg"]["data"].squeeze(0).cpu() == 1).float()
            if prob.dim() == 3:  # two channels (softmax head): the finding's probability
                prob = prob.softmax(0)[1]
            logits = torch.logit(prob.clamp(1e-6, 1 - 1e-6))
            loss = float(mixed_focal_dice_loss(logits[keep], target[keep]))
            self.results.append((dice_per_image(pred.numpy(), target.numpy()), loss))

    def compute_metrics(self, results) -> dict[str, float]:
        if not results:
            return {"dice": float("nan"), "loss": float("nan")}
        return {
            "dice": float(sum(r[0] for r in results) / len(results)),
            "loss": float(sum(r[1] for r in results) / len(results)),
        }


for _name, _module in (("MixedFocalDiceLoss", MixedFocalDiceLoss), ("CMCGNSUNetHead", CMCGNSUNetHead)):
    if _name not in MODELS.module_dict:
        MODELS.register_module(module=_module)
if "PerImageDiceAndLoss" not in METRICS.module_dict:
    METRICS.register_module(module=PerImageDiceAndLoss)
