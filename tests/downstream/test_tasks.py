import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmcgns.cli.app import app
from cmcgns.data.bootstrap import ensure_synthetic
from cmcgns.downstream.base import TaskRun
from cmcgns.plugins.manager import get_registry


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("downstream")
    for ds, studies in (("rsna", 48), ("covidx", 150)):  # 3 COVIDx classes need more than 48 studies to learn
        ensure_synthetic(ds, root, studies, 0, 64, 32)
    return root


def _run(task, options, data_root, tmp_path, fraction=1.0, backbone=None, seed=0):
    comp = get_registry().get("downstream_task", task)
    t = comp.build(options)
    return t.run(TaskRun(data_root / t.dataset, backbone, fraction, seed, tmp_path / task))


def _logged_steps(work: Path) -> list[int]:
    """The training steps mmengine logged a loss for (WORK/mm/<time>/vis_data/scalars.json)."""
    (scalars,) = work.glob("mm/*/vis_data/scalars.json")
    return [e["step"] for e in map(json.loads, scalars.read_text().splitlines()) if "loss" in e]


@pytest.mark.parametrize("mode", ["linear", "finetune"])
def test_classification_learns_synthetic_labels(data_root, tmp_path, mode):
    options = {"protocol": "fast", "mode": mode, "epochs": 40, "image_size": 32}
    if mode == "finetune":  # a ResNet trains from scratch in 10 epochs here; a ViT-Tiny at 32 px does not in 15
        options.update(backbone="resnet18", epochs=10)
    out = _run("covidx-cls", options, data_root, tmp_path)
    assert 0.0 <= out["auroc"] <= 1.0 and 0.0 <= out["acc"] <= 1.0
    # 3 classes (normal / focal consolidation / diffuse opacities) are visible even from random-init features
    assert out["auroc"] > 0.55, out


def test_a_task_trains_on_the_label_fraction_it_is_given(data_root, tmp_path):
    small = _run("rsna-cls", {"protocol": "fast", "epochs": 1, "image_size": 32}, data_root, tmp_path, fraction=0.1)
    full = _run("rsna-cls", {"protocol": "fast", "epochs": 1, "image_size": 32}, data_root, tmp_path / "full")
    assert 2 <= small["train_rows"] <= 0.15 * full["train_rows"]


def test_a_drawn_subset_is_written_and_a_given_one_is_used_with_missing_ids_counted(data_root, tmp_path):
    options = {"protocol": "fast", "epochs": 1, "image_size": 32, "feature_cache": False}
    drawn = _run("covidx-cls", options, data_root, tmp_path / "a", fraction=0.5)
    ids = (tmp_path / "a" / "covidx-cls" / "subset_ids.txt").read_text().split()
    assert len(ids) == drawn["train_rows"] and len(set(ids)) == len(ids)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "covidx-cls-f0.5-s0.txt").write_text("\n".join(ids[: len(ids) // 2] + ["not-a-row"]) + "\n")
    given = _run("covidx-cls", dict(options, subset_lists=str(shared)), data_root, tmp_path / "b", fraction=0.5)
    used = (tmp_path / "b" / "covidx-cls" / "subset_ids.txt").read_text().split()
    assert used == ids[: len(ids) // 2] and given["train_rows"] == len(used) and given["subset_ids_missing"] == 1
    from cmcgns.errors import DataError

    with pytest.raises(DataError, match=r"covidx-cls-f0.1-s0.txt: no subset list .*nor BenchX's train_10.txt"):
        _run("covidx-cls", dict(options, subset_lists=str(shared)), data_root, tmp_path / "c", fraction=0.1)
    (shared / "train_10.txt").write_text("\n".join(ids[:3]) + "\n")  # BenchX's name: one list for every seed
    for seed in (0, 1):
        benchx = _run(
            "covidx-cls", dict(options, subset_lists=str(shared)), data_root, tmp_path / f"d{seed}", 0.1, seed=seed
        )
        assert benchx["train_rows"] == 3


@pytest.mark.mm
def test_mmdet_detection_runs_with_exported_backbone(data_root, tmp_path, tiny_pretrain_config):
    from cmcgns.training.pretrain import pretrain

    summary = pretrain(tiny_pretrain_config(stages=[{"name": "a", "steps": 1}]), progress=False)
    export_dir = Path(summary["export"]["mm"]).parent
    options = {"protocol": "fast", "iters": 4, "batch_size": 4, "image_size": 32}
    out = _run("rsna-det", options, data_root, tmp_path, backbone=export_dir)
    assert 0.0 <= out["map"] <= 1.0 and 0.0 <= out["map50"] <= 1.0
    assert 0.0 <= out["map_40_75"] <= 1.0  # MGCA's metric, computed beside COCO's
    assert _logged_steps(tmp_path / "rsna-det") == [1, 2, 3, 4]  # mmengine ran the 4 iterations
    assert not list((tmp_path / "rsna-det" / "mm").glob("*.pth"))  # a suite does not pile up checkpoints


@pytest.mark.mm
def test_mm_backbone_loads_our_export_with_backbone_prefix(tiny_pretrain_config):
    import torch
    from mmengine.model.weight_init import PretrainedInit

    from cmcgns.downstream.mm.components import CMCGNSBackbone
    from cmcgns.training.pretrain import pretrain

    summary = pretrain(tiny_pretrain_config(stages=[{"name": "a", "steps": 1}]), progress=False)
    backbone = CMCGNSBackbone("vit_tiny_patch16_224", 32)
    PretrainedInit(checkpoint=summary["export"]["mm"], prefix="backbone.", map_location="cpu")(
        backbone
    )  # what init_cfg runs
    exported = torch.load(summary["export"]["mm"], weights_only=True)["state_dict"]
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, exported["backbone." + key]), key
    assert len(backbone(torch.zeros(1, 3, 32, 32))) == 3


@pytest.mark.mm
def test_mm_backbone_reads_the_safetensors_export_itself_and_refuses_foreign_weights(tmp_path):
    import timm
    import torch

    from cmcgns.downstream.mm.components import CMCGNSBackbone
    from cmcgns.export import write_export

    torch.manual_seed(0)
    source = timm.create_model("resnet18", pretrained=False, num_classes=0)
    export = write_export(tmp_path / "export", source, "resnet18", 64)
    backbone = CMCGNSBackbone("resnet18", 64, checkpoint=str(export.timm_file))
    backbone.init_weights()  # what mmengine's runner calls after building the model
    for key, value in source.state_dict().items():
        assert torch.equal(backbone.encoder.state_dict()[key], value), key
    wrong = CMCGNSBackbone("resnet34", 64, checkpoint=str(export.timm_file))
    with pytest.raises(RuntimeError, match="keys do not match.*missing"):
        wrong.init_weights()


@pytest.mark.mm
def test_mmseg_segmentation_trains_and_scores_dice(data_root, tmp_path):
    out = _run("rsna-seg", {"protocol": "fast", "iters": 6, "batch_size": 4, "image_size": 32}, data_root, tmp_path)
    assert 0.0 <= out["dice"] <= 1.0 and out["train_rows"] > 0
    assert out["foreground_weight"] > 1.0  # findings are a few % of the pixels: the loss is rebalanced
    assert _logged_steps(tmp_path / "rsna-seg") == list(range(1, 7))


def test_benchmark_cli_tables_and_regression_gate(data_root, tmp_path):
    runner = CliRunner()
    ok = tmp_path / "ok.yaml"
    ok.write_text("- {task: covidx-cls, fraction: 1.0, metric: auroc, min: 0.0}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {task: covidx-cls, fraction: 1.0, metric: auroc, value: 5.0, tolerance: 0.1}\n")
    args = [
        "benchmark",
        "--tasks",
        "covidx-cls",
        "--fractions",
        "1.0",
        "--seeds",
        "0,1",
        "--data-root",
        str(data_root),
        "--set",
        "covidx-cls.epochs=2",
        "--set",
        "covidx-cls.image_size=32",
        "--synthetic",
    ]
    res = runner.invoke(app, args + ["--out", str(tmp_path / "a"), "--expected", str(ok)])
    assert res.exit_code == 0, res.output
    lines = (tmp_path / "a" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and {json.loads(l)["seed"] for l in lines} == {0, 1}
    row = json.loads(lines[0])
    assert row["schema_version"] == 2 and row["dataset_kind"] == "synthetic" and row["backbone"] == "random-init"
    assert row["image_size"] == 32 and "protocol" in row and "selected_epoch" in row
    markdown = (tmp_path / "a" / "summary.md").read_text()
    assert markdown.startswith("- backbone: `random-init` (random init)\n- protocol: ")
    assert "- data: synthetic" in markdown and "**Synthetic data**" in markdown
    assert "±" in markdown and (tmp_path / "a" / "summary.png").stat().st_size > 0
    # the console: one line per run, one aligned table for the pass, then where everything is
    assert "{'" not in res.output and "covidx-cls f=1 seed 0: acc 0." in res.output
    assert "== random init ==" in res.output and "task        fraction  metric" in res.output
    tail = res.output.strip().splitlines()[-3:]
    assert [line.split(":")[0].strip() for line in tail] == ["results", "markdown", "plot"]
    assert tail[0].endswith("results.jsonl") and tail[2].endswith("summary.png")
    res = runner.invoke(app, args + ["--out", str(tmp_path / "b"), "--expected", str(bad)])
    assert res.exit_code == 1 and "REGRESSION" in res.output
    empty = tmp_path / "reference.yaml"
    empty.write_text(
        "source: nobody yet\nentries:\n  - {task: covidx-cls, fraction: 1.0, metric: auroc, value: null}\n"
    )
    res = runner.invoke(app, args + ["--out", str(tmp_path / "c"), "--reference", str(empty)])
    assert res.exit_code == 0 and "reference.yaml: holds no published values" in " ".join(res.output.split())
    assert "reference" not in (tmp_path / "c" / "summary.md").read_text().splitlines()[-3]  # no empty column


def test_foreground_weight_is_the_clipped_background_ratio(tmp_path):
    import numpy as np
    from PIL import Image

    from cmcgns.downstream.dense import foreground_weight

    paths = []
    for i, fg in enumerate((10, 30, 0)):
        mask = np.zeros((20, 20), dtype=np.uint8)
        mask.flat[:fg] = 1
        paths.append(tmp_path / f"m{i}.png")
        Image.fromarray(mask).save(paths[-1])
    assert foreground_weight(paths) == pytest.approx((1200 - 40) / 40)
    assert foreground_weight(paths[2:]) == 1.0  # no foreground at all: plain loss
    tiny = np.zeros((100, 100), dtype=np.uint8)
    tiny[0, 0] = 1
    Image.fromarray(tiny).save(tmp_path / "tiny.png")
    assert foreground_weight([tmp_path / "tiny.png"]) == 50.0


def test_a_data_root_without_the_dataset_is_an_error_unless_synthetic_is_asked_for(tmp_path):
    res = CliRunner().invoke(
        app,
        ["benchmark", "--tasks", "covidx-cls", "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")],
    )
    output = " ".join(res.output.split())
    assert res.exit_code == 2 and f"{tmp_path / 'empty' / 'covidx'}: no prepared covidx dataset" in output
    assert "--synthetic" in output and not (tmp_path / "empty").exists()


def test_the_mgca_protocol_selects_an_epoch_on_a_patient_disjoint_validation_split(data_root, tmp_path):
    from cmcgns.data.manifest import Manifest
    from cmcgns.downstream.classification import ClassificationOptions, split_rows

    rows = [
        {"id": f"i{k}", "patient": f"p{k // 3}", "split": "train", "labels": {"y": float(k % 2)}} for k in range(60)
    ]
    rows += [{"id": f"t{k}", "patient": f"q{k}", "split": "test", "labels": {"y": float(k % 2)}} for k in range(10)]
    manifest = Manifest(tmp_path, {"splits": {"train": 60, "test": 10}}, rows)  # no val split: one is held out
    train, val, test = split_rows(manifest, 1.0, 0, ["y"], ClassificationOptions())
    patients = lambda part: {r["patient"] for r in part}  # noqa: E731
    assert len(val) >= 6 and len(train) + len(val) == 60 and len(test) == 10
    assert not patients(train) & patients(val)  # the three images of a patient stay together
    small, _, _ = split_rows(manifest, 0.1, 0, ["y"], ClassificationOptions())
    assert {r["id"] for r in small} <= {r["id"] for r in train}  # fractions come from the remaining training rows
    out = _run("covidx-cls", {"image_size": 32, "epochs": 12, "patience": 3}, data_root, tmp_path)
    assert 1 <= out["selected_epoch"] <= 12 and out["val_rows"] > 0 and out["test_rows"] > 0
