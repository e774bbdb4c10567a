"""Writers for the official on-disk layouts of each dataset. Each module exposes
``write_study(out, seed, index, size, corrupt) -> list[row]`` (runs in worker processes) and
``finalize(out, rows)`` (writes the index/label files from all rows)."""

from __future__ import annotations

import importlib
from types import ModuleType

LAYOUTS = {
    "mimic-cxr": "mimic",
    "chexpert": "chexpert",
    "rsna": "rsna",
    "siim": "siim",
    "covidx": "covidx",
    "object-cxr": "objectcxr",
}


def layout_module(name: str) -> ModuleType:
    if name not in LAYOUTS:
        raise KeyError(name)
    return importlib.import_module(f"cmcgns.data.synth.layouts.{LAYOUTS[name]}")
