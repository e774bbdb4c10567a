"""Atomic file writes: write to a temporary sibling, fsync, then rename over the target.

A crash or an exception mid-write leaves the previous file (if any) untouched. Files get the
permissions a plain open() would give (0666 less the user's umask), not mkstemp's 0600, so
exports and results stay readable by a group that shares them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any
from collections.abc import Iterator


_WRITE_FAILURE = "inline_container"  # torch's zip writer: "[enforce fail at inline_container.cc] ... unexpected pos"


def _default_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports 'w' and 'wb', not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, _default_mode())
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError) and exc.filename is None:  # a failed write (disk full) names no file
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None
        if isinstance(exc, RuntimeError) and _WRITE_FAILURE in str(exc):  # torch.save's writer on a full disk
            raise OSError(errno.EIO, f"write failed ({str(exc).strip().splitlines()[-1][:120]})", str(target)) from None
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def finite(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None: JSON has no NaN (Python writes a bare
    `NaN` that other readers refuse), and null says "no value" to every reader."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps that writes NaN/inf as null (see `finite`): the output is always valid JSON."""
    return json.dumps(finite(obj), allow_nan=False, sort_keys=True, default=str, **kwargs)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, dumps(obj, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Any) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(dumps(row) + "\n")


def append_jsonl(path: str | os.PathLike, row: Any) -> None:
    """Append one JSON line; the line is written with a single write call and fsynced. A torn last
    line (a writer killed mid-write) is ended first, so it cannot swallow the new row."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = dumps(row) + "\n"
    if target.is_file() and target.stat().st_size:
        with open(target, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            if existing.read(1) != b"\n":
                line = "\n" + line
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
