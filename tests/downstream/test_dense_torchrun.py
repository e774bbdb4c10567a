"""Detection and segmentation under torchrun: two CPU processes (gloo), one results row, the same
metrics on both ranks; classification refuses to be launched that way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def _torchrun(args: list[str], port: int) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd + ["-m", "cmcgns", *args], env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.mm
def test_finetune_detection_under_torchrun_trains_one_ddp_model_and_writes_one_row(tmp_path):
    args = ["finetune", "--task", "rsna-det", "--protocol", "mgca", "--device", "cpu", "--synthetic"]
    args += ["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    args += ["--set", "epochs=2", "--set", "batch_size=4", "--set", "image_size=32", "--set", "num_workers=0"]
    proc = _torchrun(args, 29541)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["world_size"] == 2 and rows[0]["protocol"] == "mgca"
    assert 1 <= rows[0]["selected_epoch"] <= 2
    work = tmp_path / "out" / "work" / "rsna-det-f1.0-s0" / "mm"
    assert (work / "mm.log").is_file() and (work / "mm.rank1.log").is_file()  # both ranks ran mmengine
    assert proc.stdout.count('"map_40_75"') == 1  # one rank printed
    (scalars,) = work.glob("*/vis_data/scalars.json")
    iters = [e["iter"] for e in map(json.loads, scalars.read_text().splitlines()) if "loss" in e]
    per_epoch = int(rows[0]["metrics"]["train_rows"]) // (4 * 2)  # each rank sees half the images per epoch
    assert max(iters) <= 2 * per_epoch < 2 * (int(rows[0]["metrics"]["train_rows"]) // 4)  # vs one process


@pytest.mark.slow
def test_classification_refuses_torchrun_with_one_line(tmp_path):
    args = ["finetune", "--task", "covidx-cls", "--synthetic", "--data-root", str(tmp_path), "--out", str(tmp_path)]
    proc = _torchrun(args, 29542)
    assert proc.returncode != 0
    assert "covidx-cls: these tasks run in one process; launch them without torchrun" in proc.stderr + proc.stdout
