import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


@pytest.mark.slow
def test_two_process_gloo_identical_centroids_and_synced_grads_across_a_stage_switch(tiny_pretrain_config, tmp_path):
    cfg = tiny_pretrain_config(
        **{
            "train.batch_size": 4,
            "train.checkpoint_every": 1,
            "sampler.options.ema_rate": 0.2,
            "stages": [{"name": "a", "steps": 1}, {"name": "b", "steps": 1, "reconstruction": True}],
        }
    )
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(cfg.model_dump_json(by_alias=True))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        str(Path(__file__).with_name("ddp_worker.py")),
        str(cfg_path),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in range(2))
    assert len(r0["grads"]) == len(r1["grads"]) > 0
    for g0, g1 in zip(r0["grads"], r1["grads"]):
        assert torch.allclose(g0, g1, atol=1e-6)
    assert r0["centroids"].abs().sum() > 0
    assert torch.equal(r0["centroids"], r1["centroids"])
