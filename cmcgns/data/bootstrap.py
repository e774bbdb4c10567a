"""The built-in synthetic default: generate a dataset in its official layout and preprocess it,
reusing an earlier result made with the same parameters."""

from __future__ import annotations

import json
from pathlib import Path

from cmcgns.data.manifest import is_prepared
from cmcgns.data.synth.generate import generate
from cmcgns.io.atomic import write_json

SYNTHETIC_STAMP = "synthetic-key.json"  # marks a prepared folder as generated (and with which parameters)


def ensure_synthetic(
    dataset: str, root: Path, studies: int, seed: int, raw_size: int, image_size: int, workers: int = 1
) -> Path:
    from cmcgns.data.synth.layouts import layout_module

    raw, prepared = Path(root) / f"raw-{dataset}", Path(root) / dataset
    # "meanings": folders prepared before sentences carried their semantic keys are made again
    key = {
        "dataset": dataset,
        "studies": studies,
        "seed": seed,
        "raw_size": raw_size,
        "image_size": image_size,
        "meanings": 1,
        "eval_sets": 1,  # folders prepared before the fixed evaluation sets are made again
        "data_kind": getattr(layout_module(dataset), "data_kind", lambda: "synthetic")(),
    }
    stamp = prepared / SYNTHETIC_STAMP
    if is_prepared(prepared) and stamp.is_file() and json.loads(stamp.read_text()) == key:
        return prepared
    from cmcgns.plugins.manager import get_registry

    stamp.unlink(missing_ok=True)  # a stale stamp must not outlive the folder it described
    generate(dataset, raw, studies, seed=seed, image_size=raw_size, workers=workers)
    get_registry().get("dataset", dataset).build({}).run(raw, prepared, image_size, workers)
    write_json(stamp, key)
    return prepared


def ensure_synthetic_mimic(
    root: Path, studies: int, seed: int, raw_size: int, image_size: int, workers: int = 1
) -> Path:
    return ensure_synthetic("mimic-cxr", root, studies, seed, raw_size, image_size, workers)


def synthetic_kind(prepared: Path) -> str:
    """What a generated folder holds, as result rows record it: "synthetic", or e.g. "synthetic images,
    real Open-i reports"."""
    try:
        return str(json.loads((Path(prepared) / SYNTHETIC_STAMP).read_text()).get("data_kind", "synthetic"))
    except (OSError, json.JSONDecodeError, AttributeError):
        return "synthetic"
