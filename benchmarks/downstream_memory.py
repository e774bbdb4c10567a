"""Peak host memory of the classification linear probe (`--protocol mgca`) on a large split: images
are streamed through a DataLoader, so memory must not grow with the number of images.

    python benchmarks/downstream_memory.py [--rows 20000] [--image-size 224] [--workers 2] [--device cpu] [--no-release]

Builds a covidx-style prepared folder whose manifest lists `--rows` images (the 240 generated
images reused under distinct ids: decoding cost and memory behave as for distinct files), runs
`covidx-cls` once (random init, 1 epoch) in a child process and prints its peak RSS beside what one
split held in memory as a float tensor would take.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import sys, json
from pathlib import Path
from cmcgns.benchmark.suite import run_task
root, size, workers, device, release = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if release == "off":  # the behaviour before cmcgns.io.host_memory, for comparison on the same machine
    import cmcgns.downstream.classification as classification
    classification.release_free_heap = lambda: False
    classification.PeriodicRelease.tick = lambda self: None
row = run_task("covidx-cls", {"epochs": 1, "image_size": size, "num_workers": workers, "feature_cache": False},
               1.0, 0, root / "out", None, root / "data", synthetic=False, protocol="mgca", device=device)
print(json.dumps(row["metrics"]))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (where the encoder runs)")
    ap.add_argument(
        "--no-release", action="store_true", help="do not give freed heap pages back (the behaviour before the fix)"
    )
    args = ap.parse_args()
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.data.manifest import read_manifest, write_manifest

    tmp = Path(tempfile.mkdtemp())
    try:
        source = ensure_synthetic("covidx", tmp / "gen", 240, 0, 256, 256)
        base = read_manifest(source)
        target = tmp / "data" / "covidx"
        shutil.copytree(source / "images", target / "images")
        rows = []
        for k in range(args.rows):
            row = dict(base.rows[k % len(base.rows)])
            u = k % 10
            rows.append(dict(row, id=f"{row['id']}-{k}", split="test" if u == 0 else "val" if u == 1 else "train"))
        meta = {key: base.meta[key] for key in ("labels", "label_type")}
        write_manifest(target, "covidx", "classification", rows, 256, source, meta)
        start = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(tmp),
                str(args.image_size),
                str(args.workers),
                args.device,
                "off" if args.no_release else "on",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(done.stderr[-2000:])
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        in_memory_gib = args.rows * 3 * args.image_size**2 * 4 / 2**30
        print(json.loads(done.stdout.strip().splitlines()[-1]))
        print(
            f"{args.rows} images at {args.image_size} px, {args.workers} workers, {args.device}, "
            f"heap release {'off' if args.no_release else 'on'}: "
            f"peak RSS of the run {peak_gib:.2f} GiB "
            f"(largest process), {seconds:.0f} s; the split as one float tensor would take {in_memory_gib:.1f} GiB"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
