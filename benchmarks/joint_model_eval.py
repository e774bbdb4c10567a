"""Zero-shot classification and image-report retrieval of whole pretrained models beside random
init and the shuffled-pairing control (every image trained with another study's report, which must
lose the image-text link), several pretraining seeds (benchmarks/README.md, "The whole model").

    python benchmarks/joint_model_eval.py [--seeds 0,1,2] [--config demo] [--out runs/joint-eval]
        [--chexpert-studies 1500] [--rsna-studies 600] [--set KEY=VALUE ...]

Pretrains `--config` once per seed and pairing (paired, shuffled), then runs chexpert-zeroshot,
rsna-zeroshot and mimic-retrieval (the whole held-out test split of the pretraining data's
generator: same studies, never trained on) for each model and for a random init of the same
architecture (seeded), and prints mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METRICS = {
    "chexpert-zeroshot": ("acc", "macro_f1"),
    "rsna-zeroshot": ("auroc", "acc"),
    "mimic-retrieval": ("i2t_r1", "i2t_r5", "t2i_r1", "i2t_median_rank"),
    "openi-zeroshot": ("acc", "macro_f1"),
    "openi-retrieval": ("i2t_r1", "i2t_r5", "t2i_r1", "i2t_median_rank"),
}
SUITES = {
    "mimic-cxr": ("chexpert-zeroshot", "rsna-zeroshot", "mimic-retrieval"),
    "openi": ("openi-zeroshot", "openi-retrieval"),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--config", default="demo")
    ap.add_argument("--out", type=Path, default=Path("runs/joint-eval"))
    ap.add_argument("--chexpert-studies", type=int, default=1500)
    ap.add_argument("--rsna-studies", type=int, default=600)
    ap.add_argument("--set", action="append", default=[], help="pretraining config override (repeatable)")
    ap.add_argument("--pretrained", action="store_true", help="reuse finished runs under --out")
    ap.add_argument(
        "--dataset",
        default="mimic-cxr",
        choices=sorted(SUITES),
        help="pretraining data: the built-in synthetic MIMIC-CXR, or Open-i (its real reports, generated images)",
    )
    args = ap.parse_args()

    from cmcgns.benchmark.suite import run_suite
    from cmcgns.config.loading import load_config
    from cmcgns.config.resolve import resolve_components
    from cmcgns.config.schema import PretrainConfig
    from cmcgns.training.pretrain import pretrain

    from cmcgns.data.bootstrap import ensure_synthetic

    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = list(SUITES[args.dataset])
    extra = list(args.set)
    if args.dataset == "openi":  # every real report once; pretraining reads the prepared folder
        prepared = ensure_synthetic("openi", args.out / "data", 3955, 0, 128, 64, workers=2)
        extra.append(f"data.manifest={prepared}")
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    chance: dict[str, float] = {}
    for seed in seeds:
        for pairing in ("paired", "shuffled"):
            run_dir = args.out / f"{pairing}-s{seed}"
            config = resolve_components(
                load_config(
                    PretrainConfig,
                    args.config,
                    [f"run_dir={run_dir}", f"train.seed={seed}", f"data.pairing={pairing}", "train.tensorboard=false"]
                    + extra,
                )
            )
            if not (args.pretrained and (run_dir / "model" / "model.json").is_file()):
                pretrain(config, progress=False, overwrite=True)
            synthetic = config.data.synthetic
            studies = {
                "default": synthetic.studies,
                "chexpert": args.chexpert_studies,
                "rsna": args.rsna_studies,
                "mimic-cxr": synthetic.studies,
                "openi": 3955,
            }
            candidates = (
                {"pretrained": run_dir / "export"}
                if pairing == "shuffled"
                else {
                    "pretrained": run_dir / "export",
                    "random init": None,
                }
            )
            for name, backbone in candidates.items():
                label = name if pairing == "paired" or name != "pretrained" else "shuffled pairing"
                label = "paired" if label == "pretrained" else label
                rows = run_suite(
                    tasks,
                    [1.0],
                    [seed],
                    args.out / "eval" / f"{label.replace(' ', '-')}-s{seed}",
                    backbone,
                    args.out / "data",
                    {
                        "mimic-retrieval": {"eval_set": "split", "split": "test"},
                        "openi-retrieval": {"eval_set": "split", "split": "test"},
                    },
                    studies,
                    synthetic=True,
                    random_init_like=run_dir / "export" if backbone is None else None,
                )
                for row in rows:
                    per_task = results.setdefault(label, {}).setdefault(row["task"], {})
                    for metric in METRICS[row["task"]]:
                        per_task.setdefault(metric, []).append(row["metrics"][metric])
                    chance[row["task"]] = row["metrics"].get("chance_acc") or row["metrics"].get("chance_r1") or 0.5
                    chance[row["task"] + ":n"] = row["metrics"]["test_rows"]
    print(f"\n{len(seeds)} pretraining seeds ({args.config} on {args.dataset}); mean ± std over seeds")
    print(f"{'model':<18} {'task':<18} {'metric':<16} {'mean ± std':<18} chance   n")
    for label, tasks in results.items():
        for task, metrics in tasks.items():
            for metric, values in metrics.items():
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                n = chance[task + ":n"]
                if "median" in metric or metric == "macro_f1":
                    c = "-"
                elif "_r" in metric:  # recall@k of a uniform ranking: k / candidates
                    c = f"{min(1.0, int(metric.rsplit('_r', 1)[1]) / n):.3f}"
                else:
                    c = f"{chance[task]:.3f}"
                print(
                    f"{label:<18} {task:<18} {metric:<16} {statistics.mean(values):.3f} ± {sd:.3f}    {c:<8} "
                    f"{int(chance[task + ':n'])}"
                )
    (args.out / "joint_model_eval.json").write_text(json.dumps({"results": results, "chance": chance}, indent=2))


if __name__ == "__main__":
    main()
