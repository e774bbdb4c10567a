"""Shared machinery for `cmcgns preprocess`: drop report, image cache, manifest writing."""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import re
import sys
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
        self.repairs: collections.Counter[str] = collections.Counter()
        self.repair_examples: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
        self.max_examples = max_examples

    def repaired(self, item: str, reason: str, detail: str = "") -> None:
        """A kept item that needed a repair (e.g. a report decoded as latin-1): counted, never silent."""
        self.repairs[reason] += 1
        if len(self.repair_examples[reason]) < self.max_examples:
            self.repair_examples[reason].append({"item": item, "detail": detail})

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
            "repaired": dict(self.repairs),
            "repaired_examples": dict(self.repair_examples),
        }


def add_candidate(candidates: dict[str, dict], candidate: dict, drops: DropReport, where: str) -> None:
    """Add `candidate` under its id; an id listed again is dropped as `duplicate_id` (the first is kept)."""
    item_id = candidate["id"]
    if item_id in candidates:
        drops.drop(where, "duplicate_id", f"{item_id} listed before; the first entry is kept")
        return
    candidates[item_id] = candidate


def stable_split(key: str, fractions: dict[str, float]) -> str:
    """Deterministic split assignment from a key (patient id) and split fractions."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) / float(16**12)
    acc = 0.0
    for name, frac in fractions.items():
        acc += frac
        if u < acc:
            return name
    return list(fractions)[-1]


def high_bit_depth_to_gray8(pixels: np.ndarray, significant_bits: int | None = None) -> np.ndarray:
    """16-bit (or 32-bit integer) grey -> 8 bits, scaled by the image's real bit depth: the PNG's sBIT
    when it says, else the smallest of 8/10/12/14/16 bits that holds the maximum (PIL's convert("L")
    would clip everything above 255)."""
    values = pixels.astype(np.float64)
    if significant_bits is None:
        top = max(float(values.max()), 1.0)
        significant_bits = next((b for b in (8, 10, 12, 14, 16) if top <= 2**b - 1), int(np.ceil(np.log2(top + 1))))
    scaled = np.clip(values, 0, None) / float(2**significant_bits - 1) * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def load_gray(path: Path) -> np.ndarray:
    if not path.exists():
        raise FileNotFoundError(str(path))
    if path.suffix.lower() == ".dcm":
        return read_dicom_gray8(path)
    with Image.open(path) as opened:
        opened.load()
        im = ImageOps.exif_transpose(opened)  # a phone photo or a JPEG stored rotated: upright as viewed
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
            sbit = im.info.get("sbit")
            bits = sbit[0] if isinstance(sbit, tuple) and sbit else (sbit if isinstance(sbit, int) else None)
            return high_bit_depth_to_gray8(np.asarray(im), bits)
        if im.mode == "F":  # 32-bit float (a TIFF from a processing pipeline): its own range -> 0..255
            return float_to_gray8(np.asarray(im))
        return np.asarray(im.convert("L"))


def float_to_gray8(pixels: np.ndarray) -> np.ndarray:
    """A float image scaled by its finite range to 8 bits (convert("L") clips it to black)."""
    values = np.asarray(pixels, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("no finite pixel values")
    low, high = float(finite.min()), float(finite.max())
    scaled = (np.nan_to_num(values, nan=low, posinf=high, neginf=low) - low) / max(high - low, 1e-12) * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


MIN_IMAGE_SIDE = 32  # pixels: below that a file is an icon or a placeholder, not a radiograph
MAX_ASPECT_RATIO = 3.0  # chest radiographs are about 0.7-1.4; beyond 3 the square resize would distort it


def shape_problem(h: int, w: int) -> str:
    """A drop reason for an image no resize should keep ("" when fine)."""
    if max(h, w) / max(min(h, w), 1) > MAX_ASPECT_RATIO:
        return (
            f"extreme_aspect_ratio: {w}x{h} pixels (over {MAX_ASPECT_RATIO:g}:1; resizing to a square would distort it)"
        )
    if min(h, w) < MIN_IMAGE_SIDE:
        return f"image_too_small: {w}x{h} pixels (under {MIN_IMAGE_SIDE} on a side)"
    return ""


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
    problem = shape_problem(h, w)
    if problem:
        return dst, None, problem
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    Image.fromarray(pixels).resize((size, size), Image.BILINEAR).save(tmp, format="PNG")
    tmp.replace(out)
    return dst, (h, w), ""


MIN_JOBS_PER_WORKER = 32
PROGRESS_MIN_IMAGES = 500  # smaller jobs finish before a progress line would help


def _progress_printer(total: int) -> Callable[[int], None]:
    """A plain line on stderr at every 10 % of a large image job (readable in a cluster job's log)."""
    marks = {max(1, round(total * k / 10)) for k in range(1, 11)} if total >= PROGRESS_MIN_IMAGES else set()

    def report(done: int) -> None:
        if done in marks:
            print(f"preprocess: {done}/{total} images", file=sys.stderr, flush=True)

    return report


def cache_images(jobs: list[tuple[Path, Path]], size: int, workers: int) -> list[tuple[tuple[int, int] | None, str]]:
    """Resize every (src, dst) pair to size x size PNG; returns per job (orig_hw, error)."""
    fn = functools.partial(_resize_one, size)
    str_jobs = [(str(s), str(d)) for s, d in jobs]
    report = _progress_printer(len(jobs))
    results = []
    if workers > 1 and len(jobs) >= MIN_JOBS_PER_WORKER * workers:  # below that, spawning costs more than it saves
        from cmcgns.io.workers import ordered_map

        chunk = max(1, len(jobs) // (workers * 8) or 1)
        for result in ordered_map(fn, str_jobs, workers, chunk, "preprocess: resizing images"):
            results.append(result)
            report(len(results))
    else:
        for job in str_jobs:
            results.append(fn(job))
            report(len(results))
    return [(hw, err) for _, hw, err in results]


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray((mask > 0).astype(np.uint8) * 255).resize((size, size), Image.NEAREST)) > 127


@dataclasses.dataclass
class PreprocessResult:
    out: Path
    rows: int
    dropped: int
    splits: dict[str, int]
    split_lists: dict[str, Any] | None = None  # what `--splits` did (preprocess.split_lists)


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
    write_json(out / DROP_REPORT_NAME, drops.to_dict(considered, len(rows)))
    if not rows:
        reasons = ", ".join(f"{r} {n}" for r, n in drops.counts.most_common(3)) or "the index lists none"
        example = next((e[0] for e in drops.examples.values() if e), None)
        raise DataError(
            f"{source}: no rows kept of {considered} considered ({reasons}"
            + (f"; e.g. {example['item']}: {example['detail']}" if example else "")
            + "); check the source folder and the index files"
        )
    splits = write_manifest(out, dataset, kind, rows, image_size, source, extra_meta)
    return PreprocessResult(out, len(rows), drops.total, splits)


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found — is the source folder the official download layout?")
    return path


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(item_id: str) -> str:
    """A file name derived from an id: only [A-Za-z0-9._-], no leading dot; a changed id gets a short
    hash of the original so that two ids can never share a file."""
    name = _SAFE.sub("_", item_id).lstrip(".") or "item"
    if name != item_id:
        name = f"{name[:80]}-{hashlib.sha1(item_id.encode()).hexdigest()[:8]}"
    return name


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, with `..` and every symlink resolved, lies inside `root`."""
    try:
        return Path(path).resolve().is_relative_to(Path(root).resolve())
    except (OSError, RuntimeError):  # a symlink loop
        return False


def image_jobs(
    out: Path, items: Iterable[tuple[str, Path]], source: Path, drops: DropReport
) -> list[tuple[str, Path, Path, str]]:
    """(id, src) -> (id, src, dst absolute, dst relative to out). A source path that leads outside
    the source folder (`..`, an absolute path, a symlink) is dropped as `outside_source` and never
    read; output names come from sanitised ids, so nothing is written outside `out`."""
    jobs = []
    for item_id, src in items:
        if not inside(src, source):
            drops.drop(str(src), "outside_source", f"resolves outside {source}")
            continue
        name = safe_name(item_id)
        rel = Path(IMAGE_DIR) / (hashlib.sha1(item_id.encode()).hexdigest()[:2]) / f"{name}.png"
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


def cache_candidates(
    out: Path, candidates: dict[str, dict], size: int, workers: int, drops: DropReport, source: Path
) -> list[dict]:
    """Resize every candidate's `_src` image into the cache; rows (sorted by id) get `image`."""
    rows: list[dict] = []

    def ok(item_id: str, rel: str, hw: tuple[int, int]) -> None:  # noqa: ARG001 (interface)
        row = {k: v for k, v in candidates[item_id].items() if k != "_src"}
        rows.append({**row, "image": rel})

    jobs = image_jobs(out, ((i, c["_src"]) for i, c in candidates.items()), source, drops)
    run_image_jobs(jobs, size, workers, drops, ok)
    return sorted(rows, key=lambda r: r["id"])


def write_mask(out: Path, image_rel: str, mask: np.ndarray) -> str:
    """Save a class-index mask beside the cached image (images/... -> masks/...); returns its relative path."""
    from cmcgns.io.atomic import atomic_open

    mask_rel = image_rel.replace(f"{IMAGE_DIR}/", "masks/", 1)
    with atomic_open(out / mask_rel, "wb") as handle:
        Image.fromarray(mask.astype(np.uint8)).save(handle, format="PNG")
    return mask_rel
