"""Paper-scale smoke run and step split, measured side by side in one run on whatever device is here.

    python benchmarks/pretrain_scale.py [--image deit_base_patch16_224] [--batch 4] [--steps 3]
                                        [--precision fp32|bf16] [--device auto|cpu|cuda] [--tokens 110]

The paper's setting (cm-cgns-vit-b16 / cm-cgns-resnet50): 224 px, embed 768, K = 128, sigmoid
cross-attention, SimSiam, CM-CGNS on the local report loss, CM-MIR with 6 decoder layers, and a
BERT-base-sized text encoder (hidden 768, 12 layers; random weights built from its config with the
offline MiniLM uncased WordPiece vocabulary: no download). Reports are padded with further synthetic
sentences to about --tokens tokens (real MIMIC reports are about 110). Three variants of the same
network on the same batch, interleaved step by step through the real PretrainTask and total_loss
(forward + backward + optimiser update):
  clip      global InfoNCE only (in-batch negatives), the plain CLIP step with the same encoders
  stage I   + SimSiam local image loss + CM-CGNS local report loss (centroids initialised)
  stage II  + CM-MIR reconstruction
Prints parameter counts, median (and min-max) seconds per step, ratios to the CLIP step and peak
memory (CUDA allocator, or process RSS).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
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


def long_reports(items: list[dict], pool: list[list[str]], tokenizer, tokens: int, max_sentences: int) -> list[dict]:
    """Extend each report with sentences of other reports until it has about `tokens` tokens."""
    out = []
    for i, item in enumerate(items):
        sentences = list(item["sentences"])
        j = i + 1
        while sum(len(tokenizer.tokenize(s)) for s in sentences) < tokens and len(sentences) < max_sentences:
            sentences.append(pool[j % len(pool)][len(sentences) % len(pool[j % len(pool)])])
            j += 1
        out.append({**item, "sentences": sentences})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="deit_base_patch16_224")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=110)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    from cmcgns.config.loading import load_config
    from cmcgns.config.schema import PretrainConfig
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.data.pretrain_dataset import PairDataset
    from cmcgns.objectives.cmcgns import total_loss
    from cmcgns.training.pretrain import build_collator, build_model, build_optimizer, resolve_components
    from cmcgns.training.runtime import autocast_for, select_device

    device = select_device(args.device)
    image_pooling = "cls" if "patch" in args.image else "attention"
    tmp = tempfile.mkdtemp()
    try:
        root = Path(tmp)
        text = bert_base_folder(root)
        manifest = ensure_synthetic("mimic-cxr", root, max(48, args.batch * 4), 0, 256, args.image_size)
        overrides = [f"data.manifest={manifest}", f"data.image_size={args.image_size}", f"model.text.path={text}", "model.image.pretrained_path=null",
                     f"model.image.name={args.image}", f"model.image.pooling={image_pooling}", f"train.precision={args.precision}",
                     "sampler.options.init_threshold=1.0", "sampler.options.num_clusters=8"]

        def variant(sampler: str, local: float, head: str):
            cfg = load_config(PretrainConfig, "cm-cgns-vit-b16", overrides + [
                f"sampler.name={sampler}", f"objective.weights.local_image={local}", f"objective.weights.local_report={local}",
                f"head.name={head}"] + (["head.options={}", "stages=[{name: a, epochs: 1}]"] if head == "none" else []) +
                ([] if sampler == "cm-cgns" else ["sampler.options={}"]))
            return resolve_components(cfg)

        configs = {"clip": (variant("in-batch", 0.0, "none"), False), "stage I": (variant("cm-cgns", 1.0, "cm-mir"), False),
                   "stage II": (variant("cm-cgns", 1.0, "cm-mir"), True)}
        collate = build_collator(configs["stage II"][0])
        ds = PairDataset(manifest, "train", args.image_size, train=True)
        items = [ds[i] for i in range(args.batch)]
        items = long_reports(items, [ds[i]["sentences"] for i in range(len(ds))], collate.tokenizer, args.tokens, 16)
        batch = {k: v.to(device) for k, v in collate(items).items()}
        mean_tokens = float(batch["attention_mask"].sum(1).float().mean())
        tasks, optimizers = {}, {}
        for name, (cfg, _) in configs.items():
            torch.manual_seed(0)
            tasks[name] = build_model(cfg).to(device).train()
            optimizers[name] = build_optimizer(tasks[name], cfg)
        full = tasks["stage II"]
        params = {"image": full.model.image_encoder, "text": full.model.text_encoder, "cross-attention + pooling + projections": None,
                  "cm-mir head": full.objective.head}
        counts = {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in params.items() if m is not None}
        counts["cross-attention + pooling + projections"] = (sum(p.numel() for p in full.model.parameters()) / 1e6
                                                              - counts["image"] - counts["text"])
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds: dict[str, list[float]] = {name: [] for name in tasks}
        last: dict[str, dict] = {}
        for step in range(args.steps + 1):  # interleaved; step 0 is a warm-up
            for name, task in tasks.items():
                reconstruction = configs[name][1]
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                with autocast_for(device, args.precision):
                    losses = task(batch, step, reconstruction, torch.Generator().manual_seed(step))
                    loss = total_loss(losses)
                loss.backward()
                optimizers[name].step()
                optimizers[name].zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if step:
                    seconds[name].append(time.perf_counter() - t)
                last[name] = {k: round(float(v.detach()), 4) for k, v in losses.items()}
                assert torch.isfinite(loss), (name, last[name])
        peak = (torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
        print(f"{args.image} @{args.image_size}px + BERT-base (hidden {full.model.text_encoder.dim}), embed 768, {device}, "
              f"{args.precision}, batch {args.batch}, {mean_tokens:.0f} tokens per report, {torch.get_num_threads()} threads")
        print("parameters (M): " + ", ".join(f"{k} {v:.1f}" for k, v in counts.items()))
        clip = statistics.median(seconds["clip"])
        for name, values in seconds.items():
            med = statistics.median(values)
            print(f"{name:9s} {med:7.2f} s/step (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})  "
                  f"{med / clip:5.2f}x clip")
        print(f"peak memory {peak:.2f} GiB ({'CUDA allocator' if device.type == 'cuda' else 'process RSS, all three models'})")
        print(f"stage II losses at the last step: {last['stage II']}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
