"""SIIM-ACR pneumothorax run-length encoding (the competition's ``mask_functions.py`` format).

Pixels are taken in column-major order (the image transposed); each run is written as
``start length`` where ``start`` is relative to the end of the previous run. An empty mask is
``-1``.
"""

from __future__ import annotations

import numpy as np


def encode(mask: np.ndarray) -> str:
    flat = (np.asarray(mask).T.reshape(-1) > 0).astype(np.int8)
    if not flat.any():
        return "-1"
    edges = np.diff(np.concatenate([[0], flat, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    relative = starts.copy()
    relative[1:] = starts[1:] - ends[:-1]
    pairs = np.stack([relative, ends - starts], axis=1).reshape(-1)
    return " ".join(str(int(v)) for v in pairs)


def decode(rle: str, height: int, width: int) -> np.ndarray:
    """Decode to an (height, width) uint8 mask with values 0/1. Raises ValueError on bad input."""
    text = rle.strip()
    mask = np.zeros(height * width, dtype=np.uint8)
    if text in ("-1", ""):
        return mask.reshape(width, height).T.copy()
    values = np.array([int(v) for v in text.split()], dtype=np.int64)
    if len(values) % 2:
        raise ValueError("odd number of values in run-length string")
    position = 0
    for start, length in zip(values[0::2], values[1::2]):
        position += int(start)
        if position < 0 or length < 0 or position + length > mask.size:
            raise ValueError(f"run {start} {length} falls outside a {height}x{width} image")
        mask[position : position + int(length)] = 1
        position += int(length)
    return mask.reshape(width, height).T.copy()
