"""The built-in synthetic default: generate a MIMIC-CXR-layout dataset and preprocess it,
reusing an earlier result with the same parameters."""

from __future__ import annotations

import json
from pathlib import Path

from cmcgns.data.preprocess.base import META_NAME
from cmcgns.data.synth.generate import generate


def ensure_synthetic_mimic(root: Path, studies: int, seed: int, raw_size: int, image_size: int, workers: int = 1) -> Path:
    raw, prepared = Path(root) / "raw-mimic-cxr", Path(root) / "mimic-cxr"
    key = {"studies": studies, "seed": seed, "raw_size": raw_size, "image_size": image_size}
    stamp = prepared / "synthetic-key.json"
    if (prepared / META_NAME).is_file() and stamp.is_file() and json.loads(stamp.read_text()) == key:
        return prepared
    from cmcgns.plugins.manager import get_registry
    from cmcgns.io.atomic import write_json

    generate("mimic-cxr", raw, studies, seed=seed, image_size=raw_size, workers=workers)
    get_registry().get("dataset", "mimic-cxr").build({}).run(raw, prepared, image_size, workers)
    write_json(stamp, key)
    return prepared
