"""Run under torchrun: two gloo ranks do two training steps; each dumps centroids and grads."""

import sys
from pathlib import Path

import torch

from cmcgns.config.schema import PretrainConfig
from cmcgns import distributed as ddp
from cmcgns.training.pretrain import pretrain


def main() -> None:
    cfg = PretrainConfig.model_validate_json(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    captured = {}
    original = torch.nn.utils.clip_grad_norm_

    def capture(params, *args, **kwargs):
        params = list(params)
        captured["grads"] = [p.grad.detach().clone() for p in params if p.grad is not None]
        return original(params, *args, **kwargs)

    torch.nn.utils.clip_grad_norm_ = capture
    import cmcgns.training.pretrain as loop

    models = []
    build = loop.build_task
    loop.build_task = lambda c: models.append(build(c)) or models[-1]
    pretrain(cfg, progress=False, stop_after=2)
    centroids = models[0].objective.sampler.centroids.detach().clone()
    torch.save({"grads": captured["grads"], "centroids": centroids}, out / f"rank{ddp.rank()}.pt")
    ddp.cleanup()


if __name__ == "__main__":
    main()
