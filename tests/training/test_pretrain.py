import json
import math

import pytest
import torch

from cmcgns.training import checkpoint as ckpt
from cmcgns.training.pretrain import build_model, pretrain, resolve_components


def test_loss_goes_down_on_learnable_data(tiny_pretrain_config):
    cfg = tiny_pretrain_config(
        **{"stages": [{"name": "align", "steps": 16}], "train.lr": 1e-3, "train.log_every": 1, "head": {"name": "none"}}
    )
    pretrain(cfg, progress=False)
    import csv

    rows = list(csv.DictReader((cfg.run_dir / "metrics.csv").open()))
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 * 0.95, losses
    simsiam = [float(r["local_image_loss"]) for r in rows]
    assert sum(simsiam[-4:]) / 4 < sum(simsiam[:4]) / 4 - 0.1, simsiam


@pytest.mark.parametrize("stop", [2, 3])  # inside stage I, and exactly at the stage switch (fresh optimiser)
def test_resume_auto_is_bit_identical_with_centroids(tiny_pretrain_config, tmp_path, stop):
    full = tiny_pretrain_config(run_dir=str(tmp_path / "full"))
    pretrain(full, progress=False)
    part = tiny_pretrain_config(run_dir=str(tmp_path / "part"))
    pretrain(part, progress=False, stop_after=stop)
    assert ckpt.list_checkpoints(part.run_dir)[-1].name == f"step_{stop:08d}.pt"
    pretrain(part, resume="auto", progress=False)
    a = torch.load(ckpt.checkpoint_path(full.run_dir, 5), weights_only=True)
    b = torch.load(ckpt.checkpoint_path(part.run_dir, 5), weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert bool(a["sampler"]["memory.initialized"]) and a["sampler"]["memory.centroids"].abs().sum() > 0
    assert int(a["sampler"]["memory.refits"]) >= 1  # a refit of the queue memory happened inside the run
    for key in ("memory.centroids", "memory.queue", "memory.queue_state", "memory.idle"):
        assert torch.equal(a["sampler"][key], b["sampler"][key]), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for k in a["optimizer"]["state"]:
        assert torch.equal(a["optimizer"]["state"][k]["exp_avg"], b["optimizer"]["state"][k]["exp_avg"])


def test_checkpoint_and_exports(tiny_pretrain_config):
    import timm
    from safetensors.torch import load_file

    cfg = tiny_pretrain_config()
    summary = pretrain(cfg, progress=False)
    state = torch.load(ckpt.list_checkpoints(cfg.run_dir)[-1], weights_only=True)
    assert state["step"] == 5 and "memory.centroids" in state["sampler"]
    weights = load_file(summary["export"]["timm"])
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32)
    model.load_state_dict(weights)  # strict: timm-compatible keys
    mm = torch.load(summary["export"]["mm"], weights_only=True)["state_dict"]
    assert all(k.startswith("backbone.") for k in mm) and len(mm) == len(weights)
    assert (cfg.run_dir / "config.resolved.yaml").is_file()


def test_task_has_the_paper_components(tiny_pretrain_config):
    cfg = resolve_components(tiny_pretrain_config())
    torch.manual_seed(0)
    task = build_model(cfg)
    assert sum(p.numel() for p in task.objective.head.parameters()) > 0
    assert task.objective.predictor is not None and task.objective.logit_scale.requires_grad
    assert sum(p.numel() for p in task.model.cross_attention.parameters()) > 0


def test_stages_in_epochs_and_optimiser_reset(tiny_pretrain_config, tmp_path):
    import csv

    def lrs(reset):
        cfg = tiny_pretrain_config(
            **{
                "run_dir": str(tmp_path / f"r{reset}"),
                "train.lr": 1e-3,
                "train.warmup_steps": 1,
                "train.batch_size": 16,
                "head": {"name": "none"},
                "stages": [{"name": "a", "epochs": 1}, {"name": "b", "epochs": 0.5, "reset_optimizer": reset}],
            }
        )
        summary = pretrain(cfg, progress=False)
        rows = list(csv.DictReader((cfg.run_dir / "metrics.csv").open()))
        return summary, [float(r["lr"]) for r in rows]

    summary, with_reset = lrs(True)
    per_epoch = summary["steps_per_epoch"]
    assert summary["stage_steps"] == {"a": per_epoch, "b": round(per_epoch / 2)}
    assert with_reset[per_epoch - 1] < 1e-3 and with_reset[per_epoch] == 1e-3  # warm-up restarts at stage b
    _, without = lrs(False)
    assert without[per_epoch] < 1e-3


def test_bf16_autocast_with_grad_accumulation_runs_and_keeps_fp32_state(tiny_pretrain_config):
    """AMP path (bf16 autocast also exists on CPU): finite losses, fp32 master weights and centroids."""
    import csv
    import math

    cfg = tiny_pretrain_config(**{"train.precision": "bf16", "train.grad_accum": 2})
    summary = pretrain(cfg, progress=False)
    rows = list(csv.DictReader((cfg.run_dir / "metrics.csv").open()))
    assert len(rows) == 5 and all(math.isfinite(float(r["loss"])) for r in rows)
    assert math.isfinite(float(rows[-1]["reconstruction_loss"])) and rows[0]["reconstruction_loss"] == ""
    state = torch.load(ckpt.list_checkpoints(cfg.run_dir)[-1], weights_only=True)
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    centroids = state["sampler"]["memory.centroids"]
    assert centroids.dtype == torch.float32 and torch.isfinite(centroids).all()
    assert summary["steps"] == 5


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_pretrain_config, monkeypatch):
    import cmcgns.training.step as loop
    from cmcgns.errors import TrainingError
    from cmcgns.objectives.cmcgns import total_loss

    calls = {"n": 0}

    def poisoned(losses):
        calls["n"] += 1
        value = total_loss(losses)
        return value * float("nan") if calls["n"] >= 3 else value

    monkeypatch.setattr(loop, "total_loss", poisoned)
    cfg = tiny_pretrain_config(**{"train.log_every": 1, "train.checkpoint_every": 2})
    with pytest.raises(TrainingError, match="non-finite loss at step 3"):
        pretrain(cfg, progress=False)
    assert [p.name for p in ckpt.list_checkpoints(cfg.run_dir)] == ["step_00000002.pt"]


def test_summary_scores_the_memory_against_the_sentences_meanings(tiny_pretrain_config):
    import csv

    cfg = tiny_pretrain_config(
        **{"train.evaluate": True, "head": {"name": "none"}, "stages": [{"name": "a", "steps": 4}]}
    )
    summary = pretrain(cfg, progress=False)
    mechanism = summary["mechanism"]  # the synthetic data records what each sentence means
    assert mechanism["sentences"] > 0 and 0 < mechanism["same_meaning_rate"] < 1
    assert 1 <= mechanism["clusters_in_use"] <= 3
    for key in ("false_negative_precision", "false_negative_recall", "nmi", "purity", "hard_negative_near_miss"):
        assert key in mechanism
    header = next(csv.reader((cfg.run_dir / "metrics.csv").open()))
    for column in (
        "sampler/clusters_in_use",
        "sampler/cluster_entropy",
        "sampler/false_negative_rate",
        "sampler/within_image_cos",
        "sampler/across_image_cos",
        "sampler/row_to_centroid_cos",
    ):
        assert column in header


def test_summary_records_when_and_with_what_the_run_ran(tiny_pretrain_config):
    import json

    import torch

    before = torch.get_num_threads()
    cfg = tiny_pretrain_config(**{"train.threads": 1, "stages": [{"name": "a", "steps": 2}]})
    try:
        summary = pretrain(cfg, progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    runtime = json.loads((cfg.run_dir / "summary.json").read_text())["runtime"]
    assert runtime == summary["runtime"] and runtime["torch_threads"] == 1 and runtime["loader_workers"] == 0
    assert runtime["wall_seconds"] > 0 and runtime["started"] <= runtime["ended"]
    assert {"python", "cmcgns", "timm", "transformers"} <= set(runtime["versions"])
    assert summary["sampler"]["name"] == "cm-cgns" and "clusters_in_use" in summary["sampler"]["final"]


def test_auto_threads_share_the_cpus_among_ranks_and_loader_workers(monkeypatch):
    from cmcgns.training import runtime

    monkeypatch.setattr(runtime, "available_cpus", lambda: 16)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert runtime.torch_threads("auto", workers=0) == 4 and runtime.torch_threads("auto", workers=3) == 1
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert runtime.torch_threads("auto", workers=2) == 14 and runtime.torch_threads(3, workers=2) == 3
    monkeypatch.setattr(runtime, "available_cpus", lambda: 2)
    assert runtime.torch_threads("auto", workers=4) == 1


def test_the_command_line_prints_each_number_beside_its_chance(tmp_path):
    from typer.testing import CliRunner

    from cmcgns.cli.app import app

    args = ["pretrain", "-c", "demo", "--no-progress", "--set", f"run_dir={tmp_path / 'run'}"]
    args += [
        "--set",
        "stages=[{name: a, steps: 2}]",
        "--set",
        "data.synthetic.studies=60",
        "--set",
        "train.batch_size=8",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "pretraining finished: 2 steps" in out and "held-out pairs" in out
    assert "global_loss" in out and f"chance {math.log(8):.4f}" in out  # log of the batch
    assert "retrieval_r1" in out and "summary (every number):" in out
    chance = json.loads((tmp_path / "run" / "summary.json").read_text())["chance"]
    assert chance["global_loss"]["chance"] == pytest.approx(math.log(8))
    assert chance["local_report_loss"]["chance"] > math.log(8)  # several sentences per report


def test_a_busy_machine_gets_a_hint_not_a_silent_change(monkeypatch):
    import os

    from cmcgns.training import runtime

    monkeypatch.setattr(runtime, "available_cpus", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    assert "train.threads=1" in runtime.busy_machine_hint(2)
    assert runtime.busy_machine_hint(1) is None  # already one thread
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    assert runtime.busy_machine_hint(2) is None


def test_a_checkpoint_resumes_only_with_the_world_size_it_was_made_with(tiny_pretrain_config, tmp_path, capsys):
    from cmcgns.errors import TrainingError

    config = tiny_pretrain_config(run_dir=str(tmp_path / "run"))
    pretrain(config, progress=False, stop_after=2)
    assert "global batch 8" in capsys.readouterr().err  # per-process batch x processes x accumulation
    path = ckpt.list_checkpoints(config.run_dir)[-1]
    state = torch.load(path, weights_only=True)
    assert state["world_size"] == 1
    state["world_size"] = 2  # as if two processes (e.g. two nodes) had made it
    torch.save(state, path)
    ckpt.checksum_path(path).unlink()  # edited by hand: as a checkpoint written before checksums existed
    with pytest.raises(TrainingError, match=r"made with 2 process\(es\), this run has 1.*--allow-world-size-change"):
        pretrain(config, resume="auto", progress=False)
    summary = pretrain(config, resume="auto", progress=False, allow_world_size_change=True)
    assert summary["steps"] == 5 and "resuming a 2-process checkpoint with 1 processes" in capsys.readouterr().err
