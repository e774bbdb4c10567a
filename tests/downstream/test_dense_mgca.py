"""MGCA's dense protocol: detection (YOLOv3, frozen backbone, early stopping on validation mAP) and
segmentation (SETR / U-Net on the frozen encoder, 10 x focal - log Dice, early stopping on the
validation loss, balanced SIIM training set)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from cmcgns.data.bootstrap import ensure_synthetic
from cmcgns.downstream.base import TaskRun
from cmcgns.downstream.dense import balanced_rows
from cmcgns.plugins.manager import get_registry


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dense")
    for dataset in ("rsna", "siim"):
        ensure_synthetic(dataset, root, 60, 0, 64, 32)
    return root


def _run(task: str, options: dict, data_root: Path, work: Path) -> dict:
    built = get_registry().get("downstream_task", task).build(options)
    return built.run(TaskRun(data_root / built.dataset, None, 1.0, 0, work))


def _validation_curve(work: Path, key: str) -> dict[int, float]:
    """Per-epoch validation values that mmengine logged (vis_data/scalars.json; the test loop's
    entry comes last, under the last epoch's step, and is skipped)."""
    curve = {}
    for path in work.glob("mm/*/vis_data/scalars.json"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if key in entry:
                curve.setdefault(int(entry["step"]), float(entry[key]))
    return curve


def test_balanced_rows_keep_every_positive_and_as_many_negatives():
    rows = [{"id": i, "labels": {"Pneumothorax": float(i in (2, 5, 7))}} for i in range(10)]
    kept = balanced_rows(rows, "Pneumothorax", seed=0)
    positives = [r for r in kept if r["labels"]["Pneumothorax"] == 1.0]
    assert len(positives) == 3 and len(kept) == 6
    assert [r["id"] for r in kept] == sorted(r["id"] for r in kept)  # original order
    assert kept == balanced_rows(rows, "Pneumothorax", seed=0) != balanced_rows(rows, "Pneumothorax", seed=1)
    mostly_positive = [{"id": i, "labels": {"y": float(i > 0)}} for i in range(4)]
    assert balanced_rows(mostly_positive, "y", 0) == mostly_positive  # fewer negatives: all of them stay


@pytest.mark.mm
def test_the_mixed_loss_is_ten_focal_minus_log_dice_by_hand():
    import torch

    from cmcgns.downstream.mm.segmentation_parts import MixedFocalDiceLoss

    # two pixels: logit 0 on a finding, logit 2 on background
    p = [0.5, 1 / (1 + math.exp(-2.0))]
    bce = [-math.log(p[0]), -math.log(1 - p[1])]
    focal = (0.5**2 * bce[0] + p[1] ** 2 * bce[1]) / 2  # (1 - p_t)^2 * BCE, mean over pixels
    dice = (2 * p[0] + 1) / (p[0] + p[1] + 1 + 1)
    expected = 10 * focal - math.log(dice)
    loss = MixedFocalDiceLoss()
    logits = torch.tensor([[[[0.0, 2.0, -7.0]]]])  # N, 1, H, W; the third pixel is padding
    label = torch.tensor([[[1, 0, 255]]])
    assert float(loss(logits, label, ignore_index=255)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="one sigmoid channel"):
        loss(torch.zeros(1, 2, 1, 3), label)


@pytest.mark.mm
def test_mgca_detection_trains_yolov3_on_the_frozen_backbone_and_tests_the_best_validation_epoch(data_root, tmp_path):
    from cmcgns.downstream.mm.components import CMCGNSBackbone

    backbone = CMCGNSBackbone("resnet18", 32, frozen=True)
    backbone.train()
    assert not any(p.requires_grad for p in backbone.parameters()) and not backbone.encoder.training
    options = {"protocol": "mgca", "epochs": 4, "patience": 2, "batch_size": 8, "image_size": 32, "num_workers": 0}
    out = _run("rsna-det", options, data_root, tmp_path)
    assert 0.0 <= out["map_40_75"] <= 1.0
    curve = _validation_curve(tmp_path, "box/map_40_75")
    assert sorted(curve) == list(range(1, int(out["trained_epochs"]) + 1))  # validated after every epoch
    best = max(curve.values())
    assert curve[int(out["selected_epoch"])] == best  # the first epoch with the best validation mAP
    assert int(out["selected_epoch"]) == min(e for e, v in curve.items() if v == best)
    assert not list(tmp_path.rglob("*.pth"))


@pytest.mark.mm
@pytest.mark.parametrize("backbone,head", [("resnet18", "CMCGNSUNetHead"), ("vit_tiny_patch16_224", "SETRUPHead")])
def test_mgca_segmentation_trains_a_head_on_the_frozen_encoder_and_stops_on_validation_loss(
    data_root, tmp_path, backbone, head
):
    from cmcgns.data.manifest import read_manifest
    from cmcgns.downstream.mm.components import pyramid_channels
    from cmcgns.downstream.mm.configs import Schedule, segmentation_config
    from cmcgns.export import BackboneExport

    spec = BackboneExport.random_init(backbone, 32)
    schedule = Schedule("mgca", 1e-3, 16, 0, 0.05, epochs=50, patience=10)
    cfg = segmentation_config(spec, pyramid_channels(backbone, 32), tmp_path, schedule)
    assert cfg["model"]["backbone"]["frozen"] is True and cfg["model"]["decode_head"]["type"] == head
    assert cfg["model"]["decode_head"]["out_channels"] == 1 and cfg["model"]["decode_head"]["threshold"] == 0.5
    assert cfg["optim_wrapper"]["optimizer"] == dict(type="AdamW", lr=1e-3, weight_decay=0.05)
    assert cfg["custom_hooks"][0] == dict(
        type="EarlyStoppingHook", monitor="seg/loss", rule="less", patience=10, min_delta=0.0
    )

    options = {"epochs": 4, "patience": 2, "batch_size": 8, "image_size": 32, "num_workers": 0, "head_channels": 16}
    out = _run("siim-seg", dict(options, backbone=backbone), data_root, tmp_path)
    assert 0.0 <= out["dice"] <= 1.0 and math.isfinite(out["loss"])
    curve = _validation_curve(tmp_path, "seg/loss")
    assert sorted(curve) == list(range(1, int(out["trained_epochs"]) + 1))
    assert curve[int(out["selected_epoch"])] == min(curve.values())
    train = read_manifest(data_root / "siim").split("train")
    positives = sum(1 for r in train if float(next(iter(r["labels"].values()))) > 0)
    assert out["train_rows"] == 2 * positives  # MGCA's balanced SIIM training set


@pytest.mark.mm
def test_an_untrained_head_is_scored_without_a_training_step(data_root, tmp_path):
    options = {"protocol": "fast", "iters": 3, "batch_size": 4, "image_size": 32, "untrained": True}
    out = _run("rsna-seg", options, data_root, tmp_path)
    assert 0.0 <= out["dice"] <= 1.0 and math.isfinite(out["loss"])
    logged = [line for path in tmp_path.glob("mm/*/vis_data/scalars.json") for line in path.read_text().splitlines()]
    assert not [line for line in logged if '"lr"' in line]  # no training step logged


@pytest.mark.mm
def test_two_runs_started_within_one_second_log_to_their_own_folders(data_root, tmp_path, monkeypatch):
    """mmengine names its logger after the second a Runner starts; an untrained-head baseline takes
    less than that, and the second run used to write through the first run's closed mm.log
    ("I/O operation on closed file")."""
    import time

    monkeypatch.setattr(time, "strftime", lambda fmt, *args: "20260101_000000")  # both runs in one second
    options = {"protocol": "fast", "iters": 3, "batch_size": 4, "image_size": 32, "untrained": True}
    for work in ("first", "second"):
        out = _run("rsna-seg", options, data_root, tmp_path / work)
        assert 0.0 <= out["dice"] <= 1.0
        logged = [json.loads(p.read_text())["seg/dice"] for p in (tmp_path / work / "mm").glob("*/*.json")]
        assert logged == [out["dice"]]  # each run logged its own test metrics in its own folder


@pytest.mark.mm
@pytest.mark.parametrize("timm_name", ["vit_tiny_patch16_224", "resnet18"])
def test_backbone_levels_are_as_documented_and_a_mismatched_neck_is_one_line(timm_name):
    import torch

    from cmcgns.downstream.mm.components import CMCGNSBackbone, check_neck_matches_backbone, pyramid_levels
    from cmcgns.errors import ConfigError

    levels = pyramid_levels(timm_name, 64)
    outs = CMCGNSBackbone(timm_name, 64).eval()(torch.zeros(1, 3, 64, 64))
    assert [(o.shape[1], 64 // o.shape[-1]) for o in outs] == levels
    one = CMCGNSBackbone(timm_name, 64, out_indices=(1,)).eval()(torch.zeros(1, 3, 64, 64))
    assert len(one) == 1 and one[0].shape[1] == levels[1][0]

    backbone = dict(type="CMCGNSBackbone", timm_name=timm_name, image_size=64)
    check_neck_matches_backbone(dict(backbone=backbone, neck=dict(type="FPN", in_channels=[c for c, _ in levels])))
    check_neck_matches_backbone(
        dict(backbone=dict(backbone, out_indices=[1]), neck=dict(type="FPN", in_channels=[levels[1][0]]))
    )
    with pytest.raises(ConfigError, match=r"in_channels is \[7\].*returns 3 level\(s\) with channels .*out_indices"):
        check_neck_matches_backbone(dict(backbone=backbone, neck=dict(type="FPN", in_channels=[7])))
