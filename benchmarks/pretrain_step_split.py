"""Time split of one CM-CGNS pretraining step, measured side by side in one run.

    python benchmarks/pretrain_step_split.py [--steps 10] [--batch 16] [--text PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--text", default=None, help="local text model folder (default: offline MiniLM)")
    args = ap.parse_args()
    from cmcgns.config.schema import PretrainConfig
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.data.pretrain_dataset import PairDataset, ReportCollator
    from cmcgns.models.text_encoder import load_tokenizer
    from cmcgns.training.pretrain import build_model, resolve_components

    root = Path(tempfile.mkdtemp())
    manifest = ensure_synthetic("mimic-cxr", root, max(64, args.batch * 2), 0, 128, 64)
    cfg = resolve_components(PretrainConfig.model_validate({"data": {"manifest": str(manifest)}, "model": {"text": {"path": args.text}}}))
    model = build_model(cfg)
    collate = ReportCollator(load_tokenizer(args.text), cfg.data.max_tokens, cfg.data.max_sentences)
    ds = PairDataset(manifest, "train", cfg.data.image_size, train=True)
    batch = collate([ds[i] for i in range(args.batch)])
    timings = {"encoders": 0.0, "sampler": 0.0, "mir": 0.0, "full_step": 0.0}
    originals = {"image": model.image_encoder.forward, "text": model.text_encoder.forward, "sampler": model.sampler.forward, "head": model.head.forward}

    def timed(key, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            timings[key] += time.perf_counter() - t
            return out
        return wrapper

    model.image_encoder.forward = timed("encoders", originals["image"])
    model.text_encoder.forward = timed("encoders", originals["text"])
    model.sampler.forward = timed("sampler", originals["sampler"])
    model.head.forward = timed("mir", originals["head"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for step in range(args.steps + 1):
        if step == 1:
            timings = dict.fromkeys(timings, 0.0)  # drop the warm-up step
        t = time.perf_counter()
        loss, _ = model(batch, step, True, torch.Generator().manual_seed(step))
        loss.backward()
        opt.step()
        opt.zero_grad()
        timings["full_step"] += time.perf_counter() - t
    total = timings["full_step"]
    print(f"mean step {total / args.steps * 1000:.1f} ms (batch {args.batch}, forward+backward+update)")
    for key in ("encoders", "sampler", "mir"):
        print(f"  {key:9s} forward share: {timings[key] / total:6.1%}")
    print(f"  remainder (local alignment, backward, optimiser): {1 - sum(timings[k] for k in ('encoders', 'sampler', 'mir')) / total:6.1%}")


if __name__ == "__main__":
    main()
