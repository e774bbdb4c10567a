"""COCO-format detection annotations from manifest rows (boxes already in resized pixels)."""

from __future__ import annotations

import math

from pathlib import Path

from cmcgns.io.atomic import write_json


def coco_name(split: str) -> str:
    return f"coco_{split}.json"


def write_coco(out: Path, rows: list[dict], categories: list[str], image_size: int) -> dict[str, str]:
    written = {}
    for split in sorted({r["split"] for r in rows}):
        images, annotations = [], []
        for image_id, row in enumerate((r for r in rows if r["split"] == split), start=1):
            images.append({"id": image_id, "file_name": row["image"], "width": image_size, "height": image_size})
            for box in row["boxes"]:
                x, y, w, h = box["bbox"]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": categories.index(box["category"]) + 1,
                        "bbox": [x, y, w, h],
                        "area": w * h,
                        "iscrowd": 0,
                    }
                )
        write_json(
            out / coco_name(split),
            {
                "images": images,
                "annotations": annotations,
                "categories": [{"id": i + 1, "name": c} for i, c in enumerate(categories)],
            },
        )
        written[split] = coco_name(split)
    return written


def box_problem(x: float, y: float, w: float, h: float, hw: tuple[int, int]) -> str | None:
    """Why a box (original pixels) cannot be used, or None: non-finite values, a negative or empty
    extent, or a box that starts outside the image. (A box that runs over the right/bottom edge is
    clipped to the image by scale_box, as annotation tools often overshoot by a pixel or two.)"""
    values = (x, y, w, h)
    if not all(math.isfinite(v) for v in values):
        return "non_finite"
    if w <= 0 or h <= 0:
        return "empty_or_negative_size"
    if x < 0 or y < 0 or x >= hw[1] or y >= hw[0]:
        return "outside_image"
    return None


def usable_boxes(boxes, hw: tuple[int, int], size: int, item: str, drops) -> list[list[float]]:
    """The boxes scaled to the cache size; every unusable one is counted in the drop report."""
    kept = []
    for box in boxes:
        problem = box_problem(*box, hw)
        scaled = None if problem else scale_box(*box, hw, size)
        if problem:
            drops.drop(item, "invalid_box", f"{problem}: {list(box)}")
            continue
        if scaled is None:
            drops.drop(item, "box_too_small_after_resize", f"{list(box)} is under one pixel at {size} px")
            continue
        kept.append(scaled)
    return kept


def scale_box(x: float, y: float, w: float, h: float, hw: tuple[int, int], size: int) -> list[float] | None:
    sy, sx = size / hw[0], size / hw[1]
    x0, y0 = max(0.0, x * sx), max(0.0, y * sy)
    x1, y1 = min(float(size), (x + w) * sx), min(float(size), (y + h) * sy)
    if x1 - x0 < 1 or y1 - y0 < 1:
        return None
    return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]
