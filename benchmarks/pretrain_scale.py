"""Paper-scale smoke run and step split, measured side by side in one run on whatever device is here.

    python benchmarks/pretrain_scale.py [--image deit_base_patch16_224] [--batch 4] [--steps 3]
                                        [--precision fp32|bf16|auto] [--device auto|cpu|cuda] [--tokens 110]

The paper's setting (packaged config cm-cgns-vit-b16; --image resnet50 for the CNN path): 224 px,
embed 768, sigmoid cross-attention, SimSiam, CM-CGNS on the local report loss, CM-MIR with 6
decoder layers, and a BERT-base-sized text encoder (hidden 768, 12 layers; random weights built
from its config with the offline MiniLM uncased WordPiece vocabulary: no download). Reports are
padded with further synthetic sentences to about --tokens tokens (real MIMIC reports are about 110).
K is 8 here (a batch of 4 reports has about 40 sentences). Three variants of the same network on the
same batch, interleaved step by step through the trainer's own train_step (forward +
backward + optimiser update):
  clip      global InfoNCE only (in-batch negatives): the plain CLIP step with the same encoders
  stage I   + SimSiam local image loss + CM-CGNS local report loss (centroids initialised)
  stage II  + CM-MIR reconstruction
Prints parameter counts, median (min-max) seconds per step, ratios to the CLIP step and peak memory
(CUDA allocator, or process RSS of all three models together).
"""

from __future__ import annotations

import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import scale_arguments, setup_variants  # noqa: E402


def main() -> None:
    ap = scale_arguments(precision="fp32")
    args = ap.parse_args()
    from cmcgns.training.runtime import resolve_precision, select_device
    from cmcgns.training.step import StepSettings, train_step

    device = select_device(args.device)
    precision = resolve_precision(device, args.precision)
    tmp = Path(tempfile.mkdtemp())
    try:
        _, configs, batch, tasks, optimizers = setup_variants(tmp, args, device, precision)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    full = tasks["stage II"]
    counts = {
        "image": sum(p.numel() for p in full.model.image_encoder.parameters()) / 1e6,
        "text": sum(p.numel() for p in full.model.text_encoder.parameters()) / 1e6,
        "cm-mir head": sum(p.numel() for p in full.objective.head.parameters()) / 1e6,
    }
    counts["cross-attention + pooling + projections + predictor"] = sum(
        p.numel() for p in full.parameters()
    ) / 1e6 - sum(counts.values())
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds: dict[str, list[float]] = {name: [] for name in tasks}
    last: dict[str, dict] = {}
    for step in range(args.steps + 1):  # interleaved; step 0 is a warm-up
        for name, task in tasks.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            scaler = torch.amp.GradScaler(device.type, enabled=False)
            loss, losses = train_step(
                task,
                task.parameters,
                lambda: batch,
                step,
                configs[name][1],
                optimizers[name],
                scaler,
                StepSettings(device, precision),
            )
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step:
                seconds[name].append(time.perf_counter() - t)
            last[name] = {k: round(float(v.detach()), 4) for k, v in losses.items()}
            assert torch.isfinite(loss), (name, last[name])
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    tokens = float(batch["attention_mask"].sum(1).float().mean())
    print(
        f"{args.image} @{args.image_size}px + BERT-base (hidden {full.model.text_encoder.dim}), embed 768, {device}, "
        f"{precision}, batch {args.batch}, {tokens:.0f} tokens per report, {torch.get_num_threads()} threads"
    )
    print("parameters (M): " + ", ".join(f"{k} {v:.1f}" for k, v in counts.items()))
    clip = statistics.median(seconds["clip"])
    for name, values in seconds.items():
        med = statistics.median(values)
        print(
            f"{name:9s} {med:7.2f} s/step (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})  {med / clip:5.2f}x clip"
        )
    print(
        f"peak memory {peak:.2f} GiB ({'CUDA allocator' if device.type == 'cuda' else 'process RSS, all three models'})"
    )
    print(f"stage II losses at the last step: {last['stage II']}")


if __name__ == "__main__":
    main()
