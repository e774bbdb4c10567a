"""`cmcgns embed`: embeddings of image files or report texts as a .npy matrix, with an index file
naming the row each input became."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cmcgns.errors import DataError
from cmcgns.io.atomic import atomic_open, write_text

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".tif", ".tiff", ".bmp")


def image_inputs(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded to their image files (recursively, sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    if not found:
        raise DataError(f"{', '.join(map(str, paths))}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return found


def text_inputs(path: Path) -> tuple[list[str], list[str]]:
    """(ids, texts): a .jsonl file of {"text": ..., "id": ...} rows (id optional), or a text file with
    one report per line (blank lines skipped; ids are line numbers)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    ids, texts = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                row = json.loads(line)
                text = row["text"]
                if not isinstance(text, str):
                    raise TypeError("text is not a string")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f'{path}:{number}: not a {{"text": ...}} JSON row ({exc})') from None
            ids.append(str(row.get("id", number)))
            texts.append(text)
        else:
            ids.append(str(number))
            texts.append(line)
    if not texts:
        raise DataError(f"{path}: no texts (one report per line, or .jsonl rows with a text field)")
    return ids, texts


def embed_batches(items: list, encode: Callable[[list], torch.Tensor], batch_size: int) -> np.ndarray:
    parts = [encode(items[i : i + batch_size]).cpu().numpy() for i in range(0, len(items), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def write_embeddings(out: Path, matrix: np.ndarray, ids: list[str], overwrite: bool) -> Path:
    """OUT (.npy) and OUT with .index.txt (one input per row, in row order); refuses to replace files
    unless `overwrite`."""
    out = Path(out)
    if out.suffix != ".npy":
        raise DataError(f"{out}: give an output file ending in .npy")
    index = out.with_suffix(".index.txt")
    existing = [p for p in (out, index) if p.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]}: already exists; pass --overwrite to replace it or choose another --out")
    with atomic_open(out, "wb") as handle:
        np.save(handle, matrix)
    write_text(index, "".join(f"{i}\n" for i in ids))
    return index
