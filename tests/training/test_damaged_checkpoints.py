"""Damaged checkpoints never win (issue 20, section 3): a checksum per checkpoint catches a flipped
byte that torch.load accepts, damaged files are moved aside (kept, named), pruning never deletes
the newest good checkpoint, a run whose every checkpoint is damaged stops instead of silently
starting again, and metrics.csv survives a kill during its rewrite."""

import csv

import pytest
import torch

from cmcgns.errors import CmcgnsError
from cmcgns.training import checkpoint as ckpt
from cmcgns.training.metrics_log import MetricsLog
from cmcgns.training.pretrain import pretrain

GOOD = {k: 0 for k in ckpt.REQUIRED_KEYS}


def _save(run, step, keep=5):
    return ckpt.save_checkpoint(run, step, dict(GOOD, step=step, model={"w": torch.arange(256.0)}), keep=keep)


def _flip_a_data_byte(path):
    data = bytearray(path.read_bytes())
    at = data.find(torch.arange(256.0).numpy().tobytes()[64:96])
    assert at > 0
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_flipped_byte_that_torch_load_accepts_is_caught_and_the_previous_checkpoint_used(tmp_path):
    _save(tmp_path, 2)
    damaged = _save(tmp_path, 4)
    _flip_a_data_byte(damaged)
    assert torch.load(damaged, weights_only=True)["step"] == 4  # loads without error: only the checksum sees it
    warnings = []
    path, state = ckpt.load_latest_good(tmp_path, warnings.append)
    assert path.name == "step_00000002.pt" and state["step"] == 2
    assert "step_00000004.pt: does not match its checksum" in warnings[0]
    assert "kept as step_00000004.pt.damaged" in warnings[0]
    assert (tmp_path / "checkpoints" / "step_00000004.pt.damaged").is_file()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_00000002.pt"]


def test_pruning_never_deletes_the_checkpoint_it_just_wrote_nor_newer_files(tmp_path):
    _save(tmp_path, 3)
    _save(tmp_path, 6)
    ckpt.checkpoint_path(tmp_path, 15).write_bytes(b"\x00" * 10)  # truncated
    path, _ = ckpt.load_latest_good(tmp_path, lambda line: None)
    assert path.name == "step_00000006.pt"
    _save(tmp_path, 7, keep=1)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000007.pt", "step_00000007.pt.sha256", "step_00000015.pt.damaged"]
    _save(tmp_path, 20)  # a good newer checkpoint (another trajectory): kept by a prune at a lower step
    _save(tmp_path, 9, keep=1)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_00000009.pt", "step_00000020.pt"]


def test_every_checkpoint_damaged_stops_the_run_unless_overwrite(tiny_pretrain_config, tmp_path):
    cfg = tiny_pretrain_config(run_dir=str(tmp_path / "run"))
    pretrain(cfg, progress=False, stop_after=4)
    for path in ckpt.list_checkpoints(cfg.run_dir):
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CmcgnsError, match=r"every checkpoint is damaged \(2, kept as \*\.damaged\).*--overwrite"):
        pretrain(cfg, resume="auto", progress=False)
    summary = pretrain(cfg, resume="auto", overwrite=True, progress=False)
    assert summary["steps"] == 5
    rows = list(csv.DictReader((cfg.run_dir / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == sorted({int(r["step"]) for r in rows})  # no step twice
    assert len(list((cfg.run_dir / "checkpoints").glob("*.damaged"))) == 2


def test_resume_given_a_folder_names_a_checkpoint_file_to_give(tmp_path):
    _save(tmp_path, 2)
    with pytest.raises(CmcgnsError, match=r"is a folder; give a checkpoint file \(e.g. .*step_00000002.pt\)"):
        ckpt.resolve_resume(tmp_path, str(tmp_path))


def test_metrics_csv_survives_an_interrupted_rewrite(tmp_path, monkeypatch):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in (1, 2, 3):
        log.log(step, {"loss": float(step)})
    before = (tmp_path / "metrics.csv").read_text()

    def killed(self, rows):
        raise KeyboardInterrupt  # as a kill would, mid-rewrite

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    with pytest.raises(KeyboardInterrupt):
        MetricsLog(tmp_path, tensorboard=False).log(4, {"loss": 4.0, "new_column": 1.0})  # a new key: a rewrite
    assert (tmp_path / "metrics.csv").read_text() == before
