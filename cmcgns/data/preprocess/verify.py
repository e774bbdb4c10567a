"""`cmcgns preprocess verify DIR`: checks a preprocessed folder end to end."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from PIL import Image

from cmcgns.data.manifest import MANIFEST_NAME, META_NAME, read_manifest, row_field_problem
from cmcgns.data.preprocess.base import inside
from cmcgns.data.preprocess.split_lists import check_split_lists
from cmcgns.errors import DataError


def _finish_interrupted_swap(directory: Path) -> None:
    """A folder a killed preprocess run left mid-swap is finished (or restored) before it is checked."""
    import os
    import sys

    from cmcgns.data.preprocess import swap

    notes = [swap.recover_legacy(Path(os.path.abspath(directory)))]
    if (directory / swap.JOURNAL_NAME).is_file():
        with swap.preprocess_lock(directory):
            notes.append(swap.finish_interrupted(directory))
    for note in filter(None, notes):
        print(f"preprocess verify: {note}", file=sys.stderr)


def verify(directory: Path, check_images: bool = True) -> list[str]:
    """Return a list of problems (empty when the folder is consistent)."""
    directory = Path(directory)
    try:
        _finish_interrupted_swap(directory)
        manifest = read_manifest(directory, checked=False)  # its problems are listed below, not raised
    except DataError as exc:
        return [str(exc)]
    meta, rows = manifest.meta, manifest.rows
    problems = []
    if meta.get("rows") != len(rows):
        problems.append(f"{directory / META_NAME}: says {meta.get('rows')} rows, manifest has {len(rows)}")
    splits = dict(collections.Counter(r.get("split") for r in rows))
    if splits != meta.get("splits"):
        problems.append(f"{directory / META_NAME}: split counts {meta.get('splits')} != manifest {splits}")
    for i, row in enumerate(rows, 1):
        for key in ("image", "mask"):
            if key not in row:
                continue
            path = directory / row[key]
            if Path(row[key]).is_absolute() or not inside(path, directory):
                problems.append(f"{directory / MANIFEST_NAME}:{i}: {key} {row[key]} lies outside {directory}")
                continue
            if not path.is_file():
                problems.append(f"{directory / MANIFEST_NAME}:{i}: {key} {row[key]} missing")
            elif check_images:
                try:
                    with Image.open(path) as im:
                        im.verify()
                except Exception as exc:
                    problems.append(f"{path}: unreadable ({exc})")
        problem = row_field_problem(row, meta.get("kind"))
        if problem:
            problems.append(f"{directory / MANIFEST_NAME}:{i}: {problem}")
    problems += check_split_lists(directory, rows, meta)
    for split, name in (meta.get("coco") or {}).items():
        try:
            coco = json.loads((directory / name).read_text())
            n = len(manifest.split(split))
            if len(coco["images"]) != n:
                problems.append(f"{directory / name}: {len(coco['images'])} images but manifest split {split} has {n}")
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            problems.append(f"{directory / name}: {exc}")
    return problems
