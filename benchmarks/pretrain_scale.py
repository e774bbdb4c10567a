"""The paper-scale configuration on whatever device is here: ViT-B/16 (or ResNet-50) at 224 px
with a BERT-base-sized text encoder, CM-CGNS sampler and CM-MIR head, full training steps.

    python benchmarks/pretrain_scale.py [--image vit_base_patch16_224] [--batch 4] [--steps 3]
                                        [--precision fp32|bf16|fp16] [--device auto|cpu|cuda]

No weights are downloaded: the BERT-base architecture (hidden 768, 12 layers, 30522-word
uncased vocabulary) is built from its config with random weights, using the offline MiniLM
tokenizer (the same uncased WordPiece vocabulary); timm backbones start from random init.
Prints parameter counts, seconds per step and peak memory (CUDA allocator, or process RSS).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import torch


def bert_base_folder(root: Path) -> Path:
    from transformers import BertConfig

    from cmcgns.models.text_encoder import default_text_model_path

    folder = root / "bert-base-random"
    folder.mkdir(parents=True, exist_ok=True)
    BertConfig().save_pretrained(folder)  # bert-base-uncased shape
    source = default_text_model_path()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="vit_base_patch16_224")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    from cmcgns.config.schema import PretrainConfig
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.data.pretrain_dataset import PairDataset
    from cmcgns.training.pretrain import autocast_for, build_collator, build_model, resolve_components, select_device

    device = select_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        text = bert_base_folder(root)
        manifest = ensure_synthetic("mimic-cxr", root, max(48, args.batch * 2), 0, 256, args.image_size)
        cfg = resolve_components(PretrainConfig.model_validate({
            "data": {"manifest": str(manifest), "image_size": args.image_size, "max_tokens": 128},
            "model": {"image": {"name": args.image}, "text": {"path": str(text)}, "embed_dim": 128},
            "sampler": {"name": "cm-cgns", "options": {"num_clusters": 4}}, "head": {"name": "cm-mir"},
            "train": {"precision": args.precision}}))
        torch.manual_seed(0)
        model = build_model(cfg).to(device)
        collate = build_collator(cfg)
        ds = PairDataset(manifest, "train", args.image_size, train=True)
        batch = {k: v.to(device) for k, v in collate([ds[i] for i in range(args.batch)]).items()}
    params = {name: sum(p.numel() for p in module.parameters()) / 1e6
              for name, module in (("image", model.image_encoder), ("text", model.text_encoder), ("mir head", model.head))}
    scaler = torch.amp.GradScaler("cuda", enabled=args.precision == "fp16" and device.type == "cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = []
    for step in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with autocast_for(device, args.precision):
            loss, parts = model(batch, step, True, torch.Generator().manual_seed(step))
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step:  # step 0 is a warm-up
            seconds.append(time.perf_counter() - t)
        assert torch.isfinite(loss), parts
    peak = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(f"{args.image} @{args.image_size}px + BERT-base (hidden {model.text_encoder.dim}), {device}, {args.precision}, batch {args.batch}")
    print("parameters (M): " + ", ".join(f"{k} {v:.1f}" for k, v in params.items()))
    print(f"{sum(seconds) / len(seconds):.2f} s/step over {len(seconds)} steps; peak memory {peak:.2f} GiB "
          f"({'CUDA allocator' if device.type == 'cuda' else 'process RSS'}); last loss {parts['loss']:.4f}")


if __name__ == "__main__":
    main()
