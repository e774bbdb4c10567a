"""Ablation of the CM-CGNS components on the built-in synthetic MIMIC-CXR, several seeds.

    python benchmarks/ablation_sampler.py [--studies 2000] [--steps 150] [--batch 32] [--seeds 0,1,2]
                                          [--variants all] [--out benchmarks/results/ablation.jsonl]

Every variant trains the same network (ViT-tiny at 64 px + the offline all-MiniLM-L6-v2, embed 128,
the paper's objective unless stated) from the same seed on the same data, through the real
`cmcgns.training.pretrain.pretrain`, and is evaluated by the same code (`evaluate_model`) on the same
held-out pairs (val+test): image->report retrieval R@1/R@5 and a linear probe on frozen
image features with 1 %, 10 % and 100 % of the training labels (1 %/10 %: mean of 5 seeded subsets,
identical rows for every model; NaN when no label has enough positives). "random init" is the network
pretraining starts from. Step time is the median seconds per optimiser step in the run's last stage
(stage II, with the reconstruction head, for the CM-MIR and mae-pixel variants).
Results are appended as JSON lines (one per variant and seed) and summarised as mean +- std.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

# the recommended setting (README): softmax cross-attention and local report temperature 0.1, under which the
# local report loss learns; the official one: sigmoid attention at T = 1 with the official EMA memory
RECOMMENDED = {"cross_attention": "softmax", "local_report_temperature": 0.1}
OFFICIAL = {"cross_attention": "sigmoid", "local_report_temperature": 1.0}
VARIANTS: dict[str, dict] = {
    # name: sampler (+ its options), where it acts, head used in stage II (none = stage I only), attention setting
    "in-batch": {"sampler": "in-batch", "sampler_on": "local_report", "head": "none", **RECOMMENDED},
    "cluster-ns": {"sampler": "cluster-ns", "sampler_on": "local_report", "head": "none", **RECOMMENDED},
    "cm-cgns official (paper setting)": {
        "sampler": "cm-cgns",
        "sampler_options": {"memory": "official"},
        "sampler_on": "local_report",
        "head": "none",
        **OFFICIAL,
    },
    "cm-cgns official memory": {
        "sampler": "cm-cgns",
        "sampler_options": {"memory": "official"},
        "sampler_on": "local_report",
        "head": "none",
        **RECOMMENDED,
    },
    "cm-cgns queue, logit": {
        "sampler": "cm-cgns",
        "sampler_options": {"memory": "queue", "hard_negative_weighting": "logit"},
        "sampler_on": "local_report",
        "head": "none",
        **RECOMMENDED,
    },
    "cm-cgns queue, count": {
        "sampler": "cm-cgns",
        "sampler_options": {"memory": "queue", "hard_negative_weighting": "count"},
        "sampler_on": "local_report",
        "head": "none",
        **RECOMMENDED,
    },
    "cm-cgns queue + CM-MIR": {
        "sampler": "cm-cgns",
        "sampler_options": {"memory": "queue"},
        "sampler_on": "local_report",
        "head": "cm-mir",
        **RECOMMENDED,
    },
    # ClusterNS (clusters of the text features f^R) with today's memory and weighting defaults
    "cluster-ns queue, count": {
        "sampler": "cluster-ns",
        "sampler_options": {"memory": "queue", "hard_negative_weighting": "count"},
        "sampler_on": "local_report",
        "head": "none",
        **RECOMMENDED,
    },
    # the upper bound of removing false negatives: in-batch InfoNCE without every negative whose sentence truly
    # means the same as the anchor's (the synthetic data's recorded meanings; `cmcgns.samplers.oracle`)
    "oracle (true false negatives removed)": {
        "sampler": "oracle",
        "sampler_on": "local_report",
        "head": "none",
        **RECOMMENDED,
    },
    # earlier rows of the table, kept runnable
    "cm-cgns (global)": {"sampler": "cm-cgns", "sampler_on": "global", "head": "none", **OFFICIAL},
    "cm-cgns + mae-pixel": {"sampler": "cm-cgns", "sampler_on": "local_report", "head": "mae-pixel", **OFFICIAL},
}
# cosine cross-attention (softmax(cos / 0.1)): sharp from step 1, so sentences of one image can differ;
# each row is its softmax twin above with only the attention changed
VARIANTS.update(
    {
        f"{name}, cosine attention": {**VARIANTS[name], "cross_attention": "cosine"}
        for name in (
            "cm-cgns queue, count",
            "in-batch",
            "cm-cgns queue + CM-MIR",
            "cluster-ns queue, count",
            "oracle (true false negatives removed)",
        )
    }
)
DEFAULT_VARIANTS = list(VARIANTS)[:7]
HEAD_OPTIONS = {
    "cm-mir": {"num_heads": 4, "decoder_layers": 2, "ffn_dim": 256, "upsampler_channels": 64},
    "mae-pixel": {},
    "none": {},
}
METRICS = [
    "retrieval_r1",
    "retrieval_r5",
    "linear_probe_auc_1pct",
    "linear_probe_auc_10pct",
    "linear_probe_auc",
    "step_seconds",
]


def config_for(root: Path, args: argparse.Namespace, name: str, seed: int):
    from cmcgns.config.schema import PretrainConfig

    v = VARIANTS[name]
    align = args.steps * 2 // 3
    stages = [{"name": "align", "steps": align}]
    if v["head"] != "none":
        stages.append({"name": "align+mir", "steps": args.steps - align, "reconstruction": True})
    else:
        stages[0]["steps"] = args.steps
    sampler_options = (
        {"num_clusters": args.clusters, "ema_rate": 0.01, **v.get("sampler_options", {})}
        if v["sampler"] not in ("in-batch", "oracle")
        else {}
    )
    return PretrainConfig.model_validate(
        {
            "run_dir": str(root / "runs" / f"{name.replace(' ', '_')}-{seed}"),
            "data": {
                "manifest": str(data_root(root, args) / "mimic-cxr"),
                "image_size": args.image_size,
                "eval_split": "val+test",
            },
            "model": {
                "image": {
                    "name": args.image,
                    "pretrained_path": str(args.image_weights) if args.image_weights else None,
                },
                "normalize_patches": v.get("normalize_patches", True),
                "embed_dim": 128,
                "cross_attention": v["cross_attention"],
            },
            "sampler": {"name": v["sampler"], "options": sampler_options},
            "head": {"name": v["head"], "options": HEAD_OPTIONS[v["head"]]},
            "objective": {
                "sampler_on": v["sampler_on"],
                "local_report_temperature": v["local_report_temperature"],
            },
            "train": {
                "batch_size": args.batch,
                "lr": 3e-4,
                "warmup_steps": 10,
                "log_every": max(1, min(10, args.steps // 4)),
                "checkpoint_every": args.steps,
                "tensorboard": False,
                "seed": seed,
                "threads": args.threads or "auto",  # pretrain sets torch's threads itself: pass ours on
            },
            "stages": stages,
        }
    )


def data_root(root: Path, args: argparse.Namespace) -> Path:
    return root / f"data-{args.studies}-{args.image_size}px"


def evaluate_initial(config) -> dict[str, float]:
    from cmcgns.training.pretrain import build_collator, build_model, evaluate_model, resolve_components

    config = resolve_components(config)
    torch.manual_seed(config.train.seed)  # exactly the weights pretraining starts from
    task = build_model(config)
    return evaluate_model(task.model, config, Path(config.data.manifest), build_collator(config), torch.device("cpu"))


def step_seconds(run_dir: Path) -> float:
    import csv

    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    last_stage = rows[-1]["stage"]  # stage II for the reconstruction variants: the step with the head
    times = [(int(r["step"]), float(r["seconds"])) for r in rows if r["stage"] == last_stage]
    per_step = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(times, times[1:])]
    return statistics.median(per_step)


def memory_health(run_dir: Path) -> dict[str, list]:
    """Clusters in use and their entropy at every logged step (the memory's health over the run)."""
    import csv

    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    out: dict[str, list] = {"logged_steps": [int(r["step"]) for r in rows]}
    for name in ("clusters_in_use", "cluster_entropy", "local_report_loss"):
        key = name if name in rows[0] else f"sampler/{name}"
        out[f"trace/{name}"] = [float(r[key]) if r.get(key) else None for r in rows]
    return out


MECHANISM = [
    "clusters_in_use",
    "cluster_entropy",
    "purity",
    "nmi",
    "flagged_rate",
    "false_negative_precision",
    "false_negative_recall",
    "same_meaning_rate",
    "hard_negative_near_miss",
    "hard_negative_same_meaning",
]


def _cell(values: list[float]) -> str:
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def summarise_mechanism(rows: list[dict]) -> str:
    """The memory scored on the held-out sentences at the end of each run (mean ± std over seeds)."""
    lines = ["| variant | " + " | ".join(MECHANISM) + " |", "|---" * (len(MECHANISM) + 1) + "|"]
    for name in [n for n in VARIANTS if any(r["variant"] == n for r in rows)]:
        mine = [r for r in rows if r["variant"] == name]
        lines.append(
            f"| {name} | " + " | ".join(_cell([r.get(f"mechanism/{m}") for r in mine]) for m in MECHANISM) + " |"
        )
    return "\n".join(lines)


def summarise_health(rows: list[dict], key: str = "trace/clusters_in_use") -> str:
    """A per-step trace (clusters in use by default) at a few logged steps, mean ± std over seeds."""
    traced = [r for r in rows if r.get(key)]
    if not traced:
        return ""
    steps = traced[0]["logged_steps"]
    shown = sorted({steps[0], steps[len(steps) // 4], steps[len(steps) // 2], steps[3 * len(steps) // 4], steps[-1]})
    # one logged batch is noisy (which reports it drew): each run's mean over the last third of the run as well
    last_third = f"mean of steps > {steps[-1] * 2 // 3}"
    header = [f"step {s}" for s in shown] + [last_third]
    lines = ["| variant | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for name in [n for n in VARIANTS if any(r["variant"] == n and r.get(key) for r in rows)]:
        mine = [r for r in traced if r["variant"] == name]
        cells = [_cell([r[key][r["logged_steps"].index(s)] for r in mine if s in r["logged_steps"]]) for s in shown]
        cells.append(_cell([_late_mean(r, key) for r in mine]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _late_mean(row: dict, key: str) -> float | None:
    """A run's mean of `key` over its logged steps after two thirds of the run (None when none was logged)."""
    end = row["logged_steps"][-1]
    late = [v for step, v in zip(row["logged_steps"], row[key]) if step > end * 2 // 3 and v is not None]
    return statistics.mean(late) if late else None


def summarise(rows: list[dict]) -> str:
    names = ["random init"] + [n for n in VARIANTS if any(r["variant"] == n for r in rows)]
    lines = ["| variant | seeds | " + " | ".join(METRICS) + " |", "|---" * (len(METRICS) + 2) + "|"]
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        if not mine:
            continue
        cells = []
        for m in METRICS:
            values = [r[m] for r in mine if r.get(m) is not None and r[m] == r[m]]
            if not values:
                cells.append("n/a")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}")
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--clusters", type=int, default=32)
    ap.add_argument("--image", default="vit_tiny_patch16_224", help="timm image encoder")
    ap.add_argument(
        "--image-weights", type=Path, default=None, help="its ImageNet weights (safetensors); unset = random"
    )
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--variants", default="default", help="';'-separated names from VARIANTS, 'default' (the first seven) or 'all'"
    )
    ap.add_argument(
        "--no-random-init", action="store_true", help="skip the random-init evaluation (e.g. when adding variants)"
    )
    ap.add_argument("--root", type=Path, default=Path("runs/ablation"), help="data and run folders")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/ablation.jsonl"))
    ap.add_argument("--summarise-only", action="store_true", help="print the table of --out and exit")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.summarise_only:
        rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]
        print(summarise(rows))
        print()
        print(summarise_mechanism(rows))
        for key in ("trace/clusters_in_use", "trace/cluster_entropy", "trace/local_report_loss"):
            print(f"\n{key}\n" + summarise_health(rows, key))
        return
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.training.pretrain import pretrain

    names = {"all": list(VARIANTS), "default": DEFAULT_VARIANTS}.get(args.variants) or [
        n.strip() for n in args.variants.split(";")
    ]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    ensure_synthetic("mimic-cxr", data_root(args.root, args), args.studies, 0, 128, args.image_size, workers=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    setting = {
        "studies": args.studies,
        "steps": args.steps,
        "batch": args.batch,
        "image_size": args.image_size,
        "clusters": args.clusters,
        "image": args.image,
        "image_weights": str(args.image_weights) if args.image_weights else None,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
    }
    for seed in [int(s) for s in args.seeds.split(",")]:
        if not args.no_random_init:
            base = evaluate_initial(config_for(args.root, args, "in-batch", seed))
            rows.append({"variant": "random init", "seed": seed, **base, "step_seconds": None, **setting})
        for name in names:
            config = config_for(args.root, args, name, seed)
            t = time.perf_counter()
            summary = pretrain(config, progress=False)
            row = {
                "variant": name,
                "seed": seed,
                **summary["eval"],
                **{f"mechanism/{k}": v for k, v in summary.get("mechanism", {}).items()},
                **memory_health(config.run_dir),
                "step_seconds": step_seconds(config.run_dir),
                "train_seconds": round(time.perf_counter() - t, 1),
                **setting,
            }
            rows.append(row)
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
        if not args.no_random_init:
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(rows[-len(names) - 1]) + "\n")
    print(summarise(rows))


if __name__ == "__main__":
    main()
