"""Does pretraining help? Retrieval R@1/R@5 and linear-probe AUROC of the pretrained model next to
the very same network at its initial (random) weights, for each sampler, in one run.

    python benchmarks/pretrain_vs_random_init.py [--studies 800] [--steps 240] [--samplers in-batch,cm-cgns]

The linear probe is reported with all training labels and with 10 % of them (mean of 5 seeded
subsets, identical rows for every model): label efficiency is where pretraining is expected to
show. Every model is evaluated by the same code (cmcgns.training.pretrain.evaluate_model) on the same
held-out pairs (validate+test of the synthetic MIMIC-CXR). "random init" is the network that
pretraining starts from (same seed): random image encoder and projections, and the offline
all-MiniLM-L6-v2 text encoder. The chance level of R@1 is 1 / number of evaluation pairs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def _config(root: Path, args: argparse.Namespace, sampler: str, head: str):
    from cmcgns.config.schema import PretrainConfig

    align = args.steps * 2 // 3
    return PretrainConfig.model_validate({
        "run_dir": str(root / sampler),
        "data": {"manifest": str(root / "data" / "mimic-cxr"), "image_size": args.image_size, "eval_split": "validate+test"},
        "model": {"image": {"name": "vit_tiny_patch16_224"}},
        "sampler": {"name": sampler, "options": {"num_clusters": 8, "warmup_steps": 20} if sampler == "cm-cgns" else {}},
        "head": {"name": head},
        "train": {"batch_size": args.batch, "lr": 3e-4, "warmup_steps": 10, "log_every": 20, "checkpoint_every": args.steps,
                  "tensorboard": False, "seed": args.seed},
        "stages": [{"name": "align", "steps": align}, {"name": "align+mir", "steps": args.steps - align, "reconstruction": head != "none"}],
    })


def _evaluate_initial(config) -> dict[str, float]:
    from cmcgns.training.pretrain import build_collator, build_model, evaluate_model, resolve_components

    config = resolve_components(config)
    torch.manual_seed(config.train.seed)  # exactly the weights pretraining starts from
    model = build_model(config)
    return evaluate_model(model, config, Path(config.data.manifest), build_collator(config), torch.device("cpu"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=800)
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samplers", default="in-batch,cm-cgns")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.training.pretrain import pretrain

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ensure_synthetic("mimic-cxr", root / "data", args.studies, args.seed, 128, args.image_size, workers=2)
        results = {"random init": _evaluate_initial(_config(root, args, "in-batch", "none"))}
        for sampler in args.samplers.split(","):
            t = time.perf_counter()
            summary = pretrain(_config(root, args, sampler, "cm-mir"), progress=False)
            results[f"{sampler} + cm-mir"] = {**summary["eval"], "train_seconds": round(time.perf_counter() - t, 1)}
    pairs = int(results["random init"]["eval_pairs"])
    print(f"{args.studies} synthetic studies, {args.steps} steps, batch {args.batch}, {pairs} held-out pairs (R@1 chance {1 / pairs:.3f})")
    print(f"{'model':22s} {'R@1':>6s} {'R@5':>6s} {'probe AUROC 100%':>17s} {'10% labels':>11s}")
    base = results["random init"]
    for name, r in results.items():
        print(f"{name:22s} {r['retrieval_r1']:6.3f} {r['retrieval_r5']:6.3f} {r['linear_probe_auc']:17.3f} {r['linear_probe_auc_10pct']:11.3f}")
    for name, r in results.items():
        if name != "random init":
            print(f"{name}: R@1 {r['retrieval_r1'] - base['retrieval_r1']:+.3f}, R@5 {r['retrieval_r5'] - base['retrieval_r5']:+.3f}, "
                  f"AUROC {r['linear_probe_auc'] - base['linear_probe_auc']:+.3f} (10% labels {r['linear_probe_auc_10pct'] - base['linear_probe_auc_10pct']:+.3f}) "
                  f"vs random init ({r['train_seconds']} s training)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
