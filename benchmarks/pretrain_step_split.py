"""Where does a CM-CGNS pretraining step spend its time? Measured side by side in one run.

    python benchmarks/pretrain_step_split.py [--steps 10] [--batch 32] [--image-size 64] [--text PATH]

Three variants of the same network (same seed, same batch) are timed for a full step
(forward + backward + AdamW update):
  A  in-batch InfoNCE + local alignment             (encoders + alignment)
  B  A with the cm-cgns sampler (k-means, masking)    -> clustering cost = B - A
  C  B with CM-MIR reconstruction                      -> MIR cost        = C - B
and, inside C, the forward share of the encoders (image + text) is measured with wrappers.
Ratios are printed relative to the full CM-CGNS step (C).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def _time_variant(manifest: Path, args: argparse.Namespace, sampler: str, head: str, batch_items: list) -> tuple[float, dict]:
    from cmcgns.config.schema import PretrainConfig
    from cmcgns.training.pretrain import build_collator, build_model, resolve_components

    options = {"num_clusters": 8, "warmup_steps": 0} if sampler == "cm-cgns" else {}
    cfg = resolve_components(PretrainConfig.model_validate({
        "data": {"manifest": str(manifest), "image_size": args.image_size},
        "model": {"image": {"name": args.image_model}, "text": {"path": args.text}},
        "sampler": {"name": sampler, "options": options}, "head": {"name": head},
        "stages": [{"name": "timed", "steps": args.steps + 1, "reconstruction": head != "none"}]}))
    torch.manual_seed(0)
    model = build_model(cfg)
    batch = build_collator(cfg)(batch_items)
    shares = {"encoders": 0.0}

    def timed(fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            shares["encoders"] += time.perf_counter() - t
            return out
        return wrapper

    model.image_encoder.forward = timed(model.image_encoder.forward)
    model.text_encoder.forward = timed(model.text_encoder.forward)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    reconstruction = head != "none"
    total = 0.0
    for step in range(args.steps + 1):  # step 0 is a warm-up and is not counted
        if step == 1:
            shares["encoders"], total = 0.0, 0.0
        t = time.perf_counter()
        loss, _ = model(batch, step, reconstruction, torch.Generator().manual_seed(step))
        loss.backward()
        opt.step()
        opt.zero_grad()
        total += time.perf_counter() - t
    return total / args.steps, {k: v / args.steps for k, v in shares.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--image-model", default="vit_tiny_patch16_224")
    ap.add_argument("--text", default=None, help="local text model folder (default: offline MiniLM)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.data.pretrain_dataset import PairDataset

    with tempfile.TemporaryDirectory() as tmp:
        manifest = ensure_synthetic("mimic-cxr", Path(tmp), max(96, args.batch * 3), 0, 128, args.image_size)
        ds = PairDataset(manifest, "train", args.image_size, train=True)
        items = [ds[i] for i in range(args.batch)]
        a, _ = _time_variant(manifest, args, "in-batch", "none", items)
        b, _ = _time_variant(manifest, args, "cm-cgns", "none", items)
        c, shares = _time_variant(manifest, args, "cm-cgns", "cm-mir", items)
    print(f"{args.image_model} @{args.image_size}px + {'offline MiniLM' if args.text is None else args.text}, batch {args.batch}, "
          f"{args.steps} timed steps, {torch.get_num_threads()} threads")
    print(f"  A in-batch + alignment        {a * 1000:8.1f} ms/step")
    print(f"  B + cm-cgns sampler           {b * 1000:8.1f} ms/step")
    print(f"  C + CM-MIR (full CM-CGNS)     {c * 1000:8.1f} ms/step")
    print("share of the full step C:")
    print(f"  encoders forward (image+text) {shares['encoders'] / c:6.1%}")
    print(f"  clustering sampler (B - A)    {(b - a) / c:6.1%}")
    print(f"  CM-MIR (C - B)                {(c - b) / c:6.1%}")
    print(f"  rest (alignment, backward, optimiser) {1 - shares['encoders'] / c - (b - a) / c - (c - b) / c:6.1%}")


if __name__ == "__main__":
    main()
