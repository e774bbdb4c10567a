"""Preprocess throughput (images/s) per dataset layout, 1 worker vs N workers, in one run.

python benchmarks/preprocess_throughput.py [--n 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=512, help="raw image size written by the generator")
    ap.add_argument("--datasets", default="mimic-cxr,chexpert,rsna,siim,covidx,object-cxr")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per setting; the fastest is reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp), args)


def run(root: Path, args: argparse.Namespace) -> None:
    from cmcgns.data.synth.generate import generate
    from cmcgns.plugins.manager import get_registry

    print(f"raw images {args.size}px -> cache 224px, {args.n} studies per layout, fastest of {args.repeats} runs")
    print(f"{'dataset':12s} {'1 worker':>12s} {f'{args.workers} workers':>12s} {'ratio':>7s}")
    for dataset in args.datasets.split(","):
        raw = root / f"raw-{dataset}"
        generate(dataset, raw, args.n, image_size=args.size, workers=args.workers)
        rates = []
        for workers in (1, args.workers):
            best = 0.0
            for repeat in range(args.repeats):  # fastest of N: first-touch costs (imports, page cache) excluded
                out = root / f"{dataset}-{workers}-{repeat}"
                t = time.perf_counter()
                result = get_registry().get("dataset", dataset).build({}).run(raw, out, 224, workers)
                best = max(best, result.rows / (time.perf_counter() - t))
                shutil.rmtree(out)
            rates.append(best)
        print(f"{dataset:12s} {rates[0]:10.1f}/s {rates[1]:10.1f}/s {rates[1] / rates[0]:6.2f}x")


if __name__ == "__main__":
    main()
