"""Shared machinery for `cmcgns preprocess`: drop report, image cache, manifest writing."""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import multiprocessing
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from cmcgns.data.formats.dicom import read_dicom_gray8
from cmcgns.errors import DataError
from cmcgns.data.manifest import DROP_REPORT_NAME, write_manifest
from cmcgns.io.atomic import write_json

# Segmentation masks are single-channel PNGs holding class indices (0 background, 1 finding).
IMAGE_DIR = "images"


class DropReport:
    """Counts dropped items by reason, keeps a few examples of each; never raises."""

    def __init__(self, max_examples: int = 20) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
        self.max_examples = max_examples

    def drop(self, item: str, reason: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < self.max_examples:
            self.examples[reason].append({"item": item, "detail": detail})

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self, considered: int, kept: int) -> dict[str, Any]:
        return {
            "considered": considered,
            "kept": kept,
            "dropped": self.total,
            "by_reason": dict(self.counts),
            "examples": dict(self.examples),
        }


def stable_split(key: str, fractions: dict[str, float]) -> str:
    """Deterministic split assignment from a key (patient id) and split fractions."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)
    acc = 0.0
    for name, frac in fractions.items():
        acc += frac
        if u < acc:
            return name
    return list(fractions)[-1]


def load_gray(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(str(path))
    if path.suffix.lower() == ".dcm":
        return read_dicom_gray8(path)
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("L"))


def _resize_one(size: int, job: tuple[str, str]) -> tuple[str, tuple[int, int] | None, str]:
    """Worker: (src, dst) -> (dst, original (h, w) or None, error reason)."""
    src, dst = job
    try:
        pixels = load_gray(Path(src))
    except FileNotFoundError:
        return dst, None, "missing_image"
    except (UnidentifiedImageError, OSError, ValueError, AttributeError, KeyError, EOFError) as exc:
        return dst, None, f"unreadable_image: {type(exc).__name__}: {exc}"
    except Exception as exc:  # pydicom raises a variety of errors on damaged files
        return dst, None, f"unreadable_image: {type(exc).__name__}: {exc}"
    h, w = pixels.shape[:2]
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    Image.fromarray(pixels).resize((size, size), Image.BILINEAR).save(tmp, format="PNG")
    tmp.replace(out)
    return dst, (h, w), ""


MIN_JOBS_PER_WORKER = 32


def cache_images(jobs: list[tuple[Path, Path]], size: int, workers: int) -> list[tuple[tuple[int, int] | None, str]]:
    """Resize every (src, dst) pair to size x size PNG; returns per job (orig_hw, error)."""
    fn = functools.partial(_resize_one, size)
    str_jobs = [(str(s), str(d)) for s, d in jobs]
    if workers > 1 and len(jobs) >= MIN_JOBS_PER_WORKER * workers:  # below that, spawning costs more than it saves
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(fn, str_jobs, chunksize=max(1, len(jobs) // (workers * 8) or 1))
    else:
        results = [fn(j) for j in str_jobs]
    return [(hw, err) for _, hw, err in results]


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray((mask > 0).astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127


@dataclasses.dataclass
class PreprocessResult:
    out: Path
    rows: int
    dropped: int
    splits: dict[str, int]


def write_outputs(
    out: Path,
    dataset: str,
    kind: str,
    rows: list[dict],
    drops: DropReport,
    considered: int,
    image_size: int,
    source: Path,
    extra_meta: dict[str, Any] | None = None,
) -> PreprocessResult:
    splits = write_manifest(out, dataset, kind, rows, image_size, source, extra_meta)
    write_json(out / DROP_REPORT_NAME, drops.to_dict(considered, len(rows)))
    return PreprocessResult(out, len(rows), drops.total, splits)


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found — is the source folder the official download layout?")
    return path


def image_jobs(out: Path, items: Iterable[tuple[str, Path]]) -> list[tuple[str, Path, Path, str]]:
    """(id, src) -> (id, src, dst absolute, dst relative to out)."""
    jobs = []
    for item_id, src in items:
        rel = Path(IMAGE_DIR) / (hashlib.sha1(item_id.encode()).hexdigest()[:2]) / f"{item_id}.png"
        jobs.append((item_id, src, out / rel, rel.as_posix()))
    return jobs


def run_image_jobs(
    jobs: list[tuple[str, Path, Path, str]],
    size: int,
    workers: int,
    drops: DropReport,
    on_ok: Callable[[str, str, tuple[int, int]], None],
) -> None:
    results = cache_images([(src, dst) for _, src, dst, _ in jobs], size, workers)
    for (item_id, src, _, rel), (hw, err) in zip(jobs, results):
        if err:
            reason, _, detail = err.partition(": ")
            drops.drop(str(src), reason, detail)
        else:
            on_ok(item_id, rel, hw)


def cache_candidates(out: Path, candidates: dict[str, dict], size: int, workers: int, drops: DropReport) -> list[dict]:
    """Resize every candidate's `_src` image into the cache; rows (sorted by id) get `image`."""
    rows: list[dict] = []

    def ok(item_id: str, rel: str, hw: tuple[int, int]) -> None:  # noqa: ARG001 (interface)
        row = {k: v for k, v in candidates[item_id].items() if k != "_src"}
        rows.append({**row, "image": rel})

    run_image_jobs(image_jobs(out, ((i, c["_src"]) for i, c in candidates.items())), size, workers, drops, ok)
    return sorted(rows, key=lambda r: r["id"])


def write_mask(out: Path, image_rel: str, mask: np.ndarray) -> str:
    """Save a class-index mask beside the cached image (images/... -> masks/...); returns its relative path."""
    from cmcgns.io.atomic import atomic_open

    mask_rel = image_rel.replace(f"{IMAGE_DIR}/", "masks/", 1)
    with atomic_open(out / mask_rel, "wb") as handle:
        Image.fromarray(mask.astype(np.uint8)).save(handle, format="PNG")
    return mask_rel
