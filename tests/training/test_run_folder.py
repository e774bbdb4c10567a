import csv

import pytest
import torch

from cmcgns.errors import CmcgnsError, ConfigError, TrainingError
from cmcgns.training import checkpoint as ckpt
from cmcgns.training.metrics_log import MetricsLog
from cmcgns.training.run_folder import RunLock, check_resume_config, config_changes, prepare_new_run


def test_a_second_process_on_the_same_run_folder_fails_at_once_naming_the_holder(tmp_path):
    holder, second = RunLock(tmp_path / "run"), RunLock(tmp_path / "run")
    with holder, pytest.raises(TrainingError, match=r"run: in use by pid \d+ on .* since"), second:
        pass
    with RunLock(tmp_path / "run"):  # released at exit
        pass


def test_a_new_run_into_a_folder_with_checkpoints_needs_overwrite(tmp_path):
    run = tmp_path / "run"
    ckpt.save_checkpoint(run, 4, {"step": 4}, keep=2)
    (run / "metrics.csv").write_text("step,loss\n1,2.0\n")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(
        ConfigError,
        match="holds checkpoints of an earlier run \\(latest step_00000004.pt\\).*--resume auto.*--overwrite",
    ):
        prepare_new_run(run, None, overwrite=False)
    prepare_new_run(run, "auto", overwrite=False)  # resuming is fine
    prepare_new_run(run, None, overwrite=True)
    assert not ckpt.list_checkpoints(run) and not (run / "metrics.csv").exists()
    assert (run / "notes.txt").read_text() == "mine"  # only the run's own outputs are removed


def test_resume_refuses_a_changed_config_listing_the_fields_unless_allowed(tmp_path):
    stored = "train:\n  lr: 0.001\n  log_every: 10\nmodel:\n  embed_dim: 32\n"
    assert config_changes(stored, stored) == {}
    changed = "train:\n  lr: 0.05\n  log_every: 5\nmodel:\n  embed_dim: 64\n"
    with pytest.raises(
        ConfigError, match=r"model.embed_dim: 32 -> 64; train.lr: 0.001 -> 0.05\).*--allow-config-change"
    ):
        check_resume_config(tmp_path / "c.pt", stored, changed, allow_changes=False)
    safe_only = "train:\n  lr: 0.001\n  log_every: 5\nmodel:\n  embed_dim: 32\n"
    assert check_resume_config(tmp_path / "c.pt", stored, safe_only, allow_changes=False) == [
        "train.log_every: 10 -> 5"
    ]
    assert len(check_resume_config(tmp_path / "c.pt", stored, changed, allow_changes=True)) == 3


def test_the_newest_readable_checkpoint_is_used_and_each_damaged_one_is_reported(tmp_path):
    good = {k: 0 for k in ckpt.REQUIRED_KEYS}
    ckpt.save_checkpoint(tmp_path, 2, dict(good, step=2), keep=5)
    ckpt.save_checkpoint(tmp_path, 4, dict(good, step=4), keep=5)
    ckpt.checkpoint_path(tmp_path, 6).write_bytes(b"\x00" * 10)  # truncated
    torch.save({"step": 8}, ckpt.checkpoint_path(tmp_path, 8))  # valid torch file, not a checkpoint
    warnings = []
    path, state = ckpt.load_latest_good(tmp_path, warnings.append)
    assert path.name == "step_00000004.pt" and state["step"] == 4
    assert "step_00000008.pt: not a cmcgns pretraining checkpoint (missing model" in warnings[0]
    assert "step_00000006.pt: cannot load checkpoint" in warnings[1]
    with pytest.raises(CmcgnsError, match="missing model, optimizer"):
        ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path, 8).with_name("step_00000008.pt.damaged"))


def test_metrics_after_a_resume_have_no_repeated_steps(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in (1, 2, 3, 4):
        log.log(step, {"loss": float(step)})
    again = MetricsLog(tmp_path, tensorboard=False)
    again.truncate_after(2)
    for step in (3, 4, 5):
        again.log(step, {"loss": float(step), "extra": 1.0})
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]


@pytest.mark.slow
def test_resume_end_to_end_falls_back_over_a_damaged_checkpoint_and_logs_each_step_once(tiny_pretrain_config, capsys):
    from cmcgns.training.pretrain import pretrain

    cfg = tiny_pretrain_config()
    pretrain(cfg, progress=False, stop_after=3)
    latest = ckpt.checkpoint_path(cfg.run_dir, 3)
    latest.write_bytes(latest.read_bytes()[:100])  # a crash while it was copied elsewhere, say
    with pytest.raises(ConfigError, match="holds checkpoints"):
        pretrain(cfg, progress=False)
    capsys.readouterr()
    pretrain(cfg, progress=False, resume="auto")
    err = capsys.readouterr().err
    assert "step_00000003.pt: does not match its checksum" in err and "resumed from step 2" in err
    steps = [int(r["step"]) for r in csv.DictReader((cfg.run_dir / "metrics.csv").open())]
    assert steps == [1, 2, 3, 4, 5]
    changed = tiny_pretrain_config(**{"train.lr": 0.5})
    with pytest.raises(ConfigError, match="train.lr"):
        pretrain(changed, progress=False, resume="auto")
