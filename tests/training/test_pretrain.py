import torch

from cmcgns.training import checkpoint as ckpt
from cmcgns.training.pretrain import build_model, pretrain, resolve_components


def test_loss_goes_down_on_learnable_data(tiny_pretrain_config):
    cfg = tiny_pretrain_config(**{"stages": [{"name": "align", "steps": 16}], "train.lr": 1e-3, "train.log_every": 1,
                                  "head": {"name": "none"}})
    pretrain(cfg, progress=False)
    import csv

    rows = list(csv.DictReader((cfg.run_dir / "metrics.csv").open()))
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 * 0.9, losses


def test_resume_auto_is_bit_identical(tiny_pretrain_config, tmp_path):
    full = tiny_pretrain_config(run_dir=str(tmp_path / "full"))
    pretrain(full, progress=False)
    part = tiny_pretrain_config(run_dir=str(tmp_path / "part"))
    pretrain(part, progress=False, stop_after=2)
    assert [p.name for p in ckpt.list_checkpoints(part.run_dir)] == ["step_00000002.pt"]
    pretrain(part, resume="auto", progress=False)
    a = torch.load(ckpt.checkpoint_path(full.run_dir, 5), weights_only=True)
    b = torch.load(ckpt.checkpoint_path(part.run_dir, 5), weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert torch.equal(a["sampler"]["centroids"], b["sampler"]["centroids"])


def test_checkpoint_and_exports(tiny_pretrain_config):
    import timm
    from safetensors.torch import load_file

    cfg = tiny_pretrain_config()
    summary = pretrain(cfg, progress=False)
    state = torch.load(ckpt.list_checkpoints(cfg.run_dir)[-1], weights_only=True)
    assert state["step"] == 5 and "centroids" in state["sampler"]
    weights = load_file(summary["export"]["timm"])
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=32)
    model.load_state_dict(weights)  # strict: timm-compatible keys
    mm = torch.load(summary["export"]["mm"], weights_only=True)["state_dict"]
    assert all(k.startswith("backbone.") for k in mm) and len(mm) == len(weights)
    assert (cfg.run_dir / "config.resolved.yaml").is_file()


def test_reconstruction_head_learns_from_text(tiny_pretrain_config):
    cfg = resolve_components(tiny_pretrain_config())
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.head.enabled and sum(p.numel() for p in model.head.parameters()) > 0


def test_bf16_autocast_with_grad_accumulation_runs_and_keeps_fp32_state(tiny_pretrain_config):
    """AMP path (bf16 autocast also exists on CPU): finite losses, fp32 master weights and centroids."""
    import csv
    import math

    cfg = tiny_pretrain_config(**{"train.precision": "bf16", "train.grad_accum": 2})
    summary = pretrain(cfg, progress=False)
    rows = list(csv.DictReader((cfg.run_dir / "metrics.csv").open()))
    assert len(rows) == 5 and all(math.isfinite(float(r["loss"])) for r in rows)
    assert "reconstruction" in rows[-1] and math.isfinite(float(rows[-1]["reconstruction"]))
    state = torch.load(ckpt.list_checkpoints(cfg.run_dir)[-1], weights_only=True)
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    centroids = state["sampler"]["centroids"]
    assert centroids.dtype == torch.float32 and torch.isfinite(centroids).all()
    assert summary["steps"] == 5
