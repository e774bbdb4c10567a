"""Orchestrates synthetic dataset generation across worker processes; deterministic for a
given seed whatever the number of workers."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from cmcgns.data.synth.layouts import LAYOUTS, layout_module
from cmcgns.data.synth.study import study_rng
from cmcgns.errors import DataError
from cmcgns.io.atomic import write_json

MANIFEST_NAME = "SYNTHETIC.json"


def _work(dataset: str, out: str, seed: int, size: int, corrupt_fraction: float, index: int) -> list[dict]:
    corrupt = corrupt_fraction > 0 and study_rng(seed, index, "corrupt").random() < corrupt_fraction
    return layout_module(dataset).write_study(Path(out), seed, index, size, corrupt)


def generate(
    dataset: str,
    out: Path,
    n: int,
    *,
    seed: int = 0,
    image_size: int = 256,
    workers: int = 1,
    corrupt_fraction: float = 0.0,
    progress=None,
) -> dict:
    if dataset not in LAYOUTS:
        raise DataError(f"unknown synthetic dataset {dataset!r}; choose one of {', '.join(LAYOUTS)}")
    if n < 1:
        raise DataError("number of studies must be at least 1")
    if not 32 <= image_size <= 4096:
        raise DataError(f"image size {image_size} outside 32..4096")
    if not 0.0 <= corrupt_fraction < 1.0:
        raise DataError("corrupt fraction must be in [0, 1)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    work = functools.partial(_work, dataset, str(out), seed, image_size, corrupt_fraction)
    rows: list[dict] = []
    if workers <= 1:
        for i in range(n):
            rows.extend(work(i))
            if progress:
                progress(i + 1, n)
    else:
        from cmcgns.io.workers import ordered_map

        chunk = max(1, min(64, n // (workers * 8) or 1))
        for done, rows_of_one in enumerate(ordered_map(work, range(n), workers, chunk, f"synth {dataset}"), 1):
            rows.extend(rows_of_one)
            if progress:
                progress(done, n)
    layout_module(dataset).finalize(out, rows, seed)
    summary = {
        "dataset": dataset,
        "studies": n,
        "seed": seed,
        "image_size": image_size,
        "corrupt_fraction": corrupt_fraction,
        "seconds": round(time.perf_counter() - start, 3),
    }
    write_json(out / MANIFEST_NAME, summary)
    return summary
