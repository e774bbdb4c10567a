"""Downstream scores of pretrained backbones beside random init, same tasks, fractions and seeds:
the measurement behind a `beats: random-init` gate entry (see benchmarks/README.md).

    python benchmarks/downstream_vs_random.py --backbone cm-cgns-0=RUN0/export --backbone cm-cgns-1=RUN1/export \\
        [--tasks covidx-cls,rsna-cls] [--fractions 1.0,0.1] [--seeds 0,1,2] [--studies 240] [--protocol fast]

Runs every task x fraction x seed for random init and each backbone on generated data (--synthetic)
or the prepared datasets under --data-root, then prints AUROC mean ± std per backbone.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", action="append", default=[], help="NAME=EXPORT_DIR (repeatable)")
    ap.add_argument("--tasks", default="covidx-cls,rsna-cls")
    ap.add_argument("--fractions", default="1.0,0.1")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--studies", type=int, default=240)
    ap.add_argument("--protocol", default="fast", choices=["fast", "mgca"])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--metric", default="auroc")
    ap.add_argument("--data-root", type=Path, default=Path("runs/downstream-vs-random/data"))
    ap.add_argument(
        "--real", action="store_true", help="use the prepared datasets under --data-root, not generated ones"
    )
    ap.add_argument("--out", type=Path, default=Path("runs/downstream-vs-random"))
    args = ap.parse_args()
    from cmcgns.benchmark.suite import run_suite

    tasks = [t for t in args.tasks.split(",") if t]
    backbones: dict[str, Path | None] = {"random init": None}
    for item in args.backbone:
        name, _, folder = item.partition("=")
        backbones[name] = Path(folder)
    scores: dict[tuple[str, float], dict[str, list[float]]] = {}
    for name, folder in backbones.items():
        rows = run_suite(
            tasks,
            [float(f) for f in args.fractions.split(",")],
            [int(s) for s in args.seeds.split(",")],
            args.out / name.replace(" ", "-"),
            folder,
            args.data_root,
            {t: {"epochs": args.epochs} for t in tasks},
            args.studies,
            synthetic=not args.real,
            protocol=args.protocol,
        )
        for r in rows:
            scores.setdefault((r["task"], r["fraction"]), {}).setdefault(name, []).append(r["metrics"][args.metric])
    names = list(backbones)
    print(f"| task @ fraction | {' | '.join(names)} |")
    print("|---|" + "---|" * len(names))
    for (task, fraction), per in sorted(scores.items()):
        cells = [
            f"{statistics.mean(per[n]):.3f} ± {statistics.stdev(per[n]) if len(per[n]) > 1 else 0:.3f}" for n in names
        ]
        print(f"| {task} @ {fraction:g} | {' | '.join(cells)} |")
    (args.out / "scores.json").write_text(json.dumps({f"{t}@{f}": v for (t, f), v in scores.items()}, indent=1))


if __name__ == "__main__":
    main()
