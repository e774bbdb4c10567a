"""Writers for the official on-disk layouts of each dataset. Each module exposes
``write_study(out, seed, index, size, corrupt) -> list[row]`` (runs in worker processes) and
``finalize(out, rows)`` (writes the index/label files from all rows)."""

from __future__ import annotations

import importlib
from types import ModuleType

from cmcgns.data.preprocess.registry import BUILTIN_DATASETS

# one dataset table (cmcgns/data/preprocess/registry.py): a built-in dataset's synthetic layout module
# has the same name as its preprocessing module
LAYOUTS = {name: module for name, _kind, module, _options, _description in BUILTIN_DATASETS}


def layout_module(name: str) -> ModuleType:
    if name not in LAYOUTS:
        raise KeyError(name)
    return importlib.import_module(f"cmcgns.data.synth.layouts.{LAYOUTS[name]}")
