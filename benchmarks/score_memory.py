"""Score a finished (or interrupted) pretraining run's cluster memory against the sentences' meanings.

    python benchmarks/score_memory.py RUN_DIR [RUN_DIR ...] [--split val+test] [--manifest DIR]

For each run folder: its resolved config and latest checkpoint are loaded, the held-out split of its
synthetic MIMIC-CXR manifest (whose sentences record what they mean) is encoded, and the memory is
scored (`cmcgns.training.mechanism`): clusters in use, entropy, purity / NMI against the semantic keys,
false-negative precision and recall, hard negatives that are near misses (same finding, other side) or
false (same meaning). One JSON line per run. Pretraining writes the same scores into summary.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def score_run(run_dir: Path, split: str, manifest: Path | None) -> dict:
    from cmcgns.config.loading import RESOLVED_CONFIG_NAME, load_config
    from cmcgns.config.schema import PretrainConfig
    from cmcgns.training import checkpoint as ckpt
    from cmcgns.training.pretrain import build_collator, build_model, resolve_components, score_sampler

    config = resolve_components(load_config(PretrainConfig, run_dir / RESOLVED_CONFIG_NAME))
    config.data.eval_split = split
    checkpoints = ckpt.list_checkpoints(run_dir)
    if not checkpoints:
        raise SystemExit(f"{run_dir}: no checkpoint to score")
    state = ckpt.load_checkpoint(checkpoints[-1])
    task = build_model(config)
    task.load_state_dict(state["model"])
    data = manifest or (Path(config.data.manifest) if config.data.manifest else run_dir / "data" / "mimic-cxr")
    scores = score_sampler(task, config, data, build_collator(config), torch.device("cpu"))
    if scores is None:
        raise SystemExit(f"{data}: its sentences record no meanings (only the synthetic generator writes them)")
    return {"run": str(run_dir), "step": int(state["step"]), "sampler": config.sampler.name, **scores}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--split", default="val+test")
    ap.add_argument("--manifest", type=Path, default=None, help="default: the run's data.manifest")
    args = ap.parse_args()
    for run in args.runs:
        print(json.dumps(score_run(run, args.split, args.manifest)), flush=True)


if __name__ == "__main__":
    main()
