"""Shared set-up for the pretraining benchmarks: the paper config on synthetic data with a
BERT-base-sized random text encoder (no download) and reports padded to real-MIMIC length."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch


def bert_base_folder(root: Path) -> Path:
    """A BERT-base-shaped model folder (hidden 768, 12 layers) with the offline MiniLM uncased WordPiece vocabulary."""
    from transformers import BertConfig

    from cmcgns.models.text_encoder import default_text_model_path

    folder = root / "bert-base-random"
    folder.mkdir(parents=True, exist_ok=True)
    BertConfig().save_pretrained(folder)
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
            other = pool[j % len(pool)]
            sentences.append(other[len(sentences) % len(other)])
            j += 1
        out.append({**item, "sentences": sentences})
    return out


def paper_variants(
    root: Path,
    image: str,
    image_size: int,
    precision: str,
    batch: int,
    config: str = "cm-cgns-vit-b16",
    extra: list[str] | None = None,
    studies: int = 0,
    data_root: Path | None = None,
):
    """(manifest, {name: (resolved config, reconstruction)}) for the plain CLIP step, stage I and stage II."""
    from cmcgns.config.loading import load_config
    from cmcgns.config.schema import PretrainConfig
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.training.pretrain import resolve_components

    text = bert_base_folder(root)
    manifest = ensure_synthetic("mimic-cxr", data_root or root, max(48, batch * 4, studies), 0, 256, image_size)
    pooling = "cls" if "patch" in image else "attention"
    overrides = [
        f"data.manifest={manifest}",
        f"data.image_size={image_size}",
        f"model.text.path={text}",
        "model.image.pretrained_path=null",
        f"model.image.name={image}",
        f"model.image.pooling={pooling}",
        f"train.precision={precision}",
        f"train.batch_size={batch}",
        "sampler.options.init_threshold=1.0",
        "sampler.options.num_clusters=8",
    ] + list(extra or [])

    def variant(sampler: str, local: float, head: str):
        sets = overrides + [
            f"sampler.name={sampler}",
            f"objective.weights.local_image={local}",
            f"objective.weights.local_report={local}",
            f"head.name={head}",
        ]
        if head == "none":
            sets += ["head.options={}", "stages=[{name: a, epochs: 1}]"]
        if sampler != "cm-cgns":
            sets += ["sampler.options={}"]
        return resolve_components(load_config(PretrainConfig, config, sets))

    return manifest, {
        "clip": (variant("in-batch", 0.0, "none"), False),
        "stage I": (variant("cm-cgns", 1.0, "cm-mir"), False),
        "stage II": (variant("cm-cgns", 1.0, "cm-mir"), True),
    }


def padded_batch(config, manifest: Path, batch: int, tokens: int, device: torch.device) -> dict[str, torch.Tensor]:
    from cmcgns.data.pretrain_dataset import PairDataset
    from cmcgns.training.pretrain import build_collator

    collate = build_collator(config)
    ds = PairDataset(manifest, "train", config.data.image_size, train=True)
    items = [ds[i] for i in range(batch)]
    items = long_reports(
        items, [ds[i]["sentences"] for i in range(len(ds))], collate.tokenizer, tokens, config.data.max_sentences
    )
    return {k: v.to(device) for k, v in collate(items).items()}


def setup_variants(
    root: Path,
    args,
    device: torch.device,
    precision: str,
    names: tuple[str, ...] = ("clip", "stage I", "stage II"),
    studies: int = 0,
):
    """The paper variants on a padded batch: (manifest, configs, batch, tasks, optimisers), every task
    built from the same seed. `args` needs image, image_size, batch and tokens."""
    from cmcgns.training.pretrain import build_model, build_optimizer

    manifest, configs = paper_variants(
        root, args.image, args.image_size, precision, args.batch, studies=studies, data_root=args.data_root
    )
    configs = {k: configs[k] for k in names}
    batch = padded_batch(configs["stage II"][0], manifest, args.batch, args.tokens, device)
    tasks, optimizers = {}, {}
    for name, (cfg, _) in configs.items():
        torch.manual_seed(0)
        tasks[name] = build_model(cfg).to(device).train()
        optimizers[name] = build_optimizer(tasks[name], cfg, device)
    return manifest, configs, batch, tasks, optimizers


def scale_arguments(precision: str) -> argparse.ArgumentParser:
    """The arguments every paper-scale benchmark takes (network, batch, report length, device)."""
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default="deit_base_patch16_224")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=110)
    ap.add_argument("--precision", default=precision, choices=["auto", "fp32", "bf16", "fp16"])
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder to keep (and reuse) the synthetic MIMIC-CXR data in; default a temporary folder",
    )
    return ap
