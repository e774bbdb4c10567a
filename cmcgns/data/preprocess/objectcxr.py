"""Object-CXR -> detection manifest + COCO json (class "foreign_object"). Rectangles, ellipses
and polygons become their bounding boxes. `dev` is the test split; train is split train/val."""

from __future__ import annotations

import math
from pathlib import Path

from cmcgns.data.preprocess.base import (
    add_candidate,
    DropReport,
    image_jobs,
    run_image_jobs,
    stable_split,
    write_outputs,
)
from cmcgns.data.preprocess.coco import usable_boxes, write_coco
from cmcgns.data.preprocess.tabular import read_csv
from cmcgns.errors import DataError

CATEGORY = "foreign_object"


def parse_annotation(text: str, where: str) -> list[tuple[float, float, float, float]]:
    boxes = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        values = part.split()
        try:
            kind, coords = int(values[0]), [float(v) for v in values[1:]]
        except (ValueError, IndexError):
            raise DataError(f"{where}: cannot parse annotation {part!r}") from None
        if kind not in (0, 1, 2) or len(coords) < 4 or len(coords) % 2:
            raise DataError(f"{where}: annotation {part!r} must be 'TYPE x y x y ...' with TYPE 0/1/2")
        if not all(math.isfinite(v) for v in coords):  # counted as an invalid box, never stretched
            boxes.append((math.nan,) * 4)
            continue
        xs, ys = coords[0::2], coords[1::2]
        boxes.append((min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
    return boxes


def preprocess(source: Path, out: Path, image_size: int, workers: int) -> object:
    drops = DropReport()
    candidates = {}
    for official in ("train", "dev"):
        csv_path = source / f"{official}.csv"
        for lineno, row in enumerate(read_csv(csv_path, ["image_name", "annotation"]), start=2):
            boxes = parse_annotation(row["annotation"], f"{csv_path}:{lineno}")
            split = "test" if official == "dev" else stable_split(row["image_name"], {"train": 0.85, "val": 0.15})
            item_id = f"{official}_{Path(row['image_name']).stem}"
            add_candidate(
                candidates,
                {
                    "id": item_id,
                    "split": split,
                    "_boxes": boxes,
                    "_src": source / official / row["image_name"],
                },
                drops,
                f"{csv_path}:{lineno}",
            )
    rows: list[dict] = []

    def ok(item_id: str, rel: str, hw: tuple[int, int]) -> None:
        c = candidates[item_id]
        boxes = usable_boxes(c["_boxes"], hw, image_size, item_id, drops)
        if c["_boxes"] and not boxes:
            drops.drop(item_id, "no_valid_box", "annotated image whose boxes are all unusable")
            return
        rows.append(
            {
                "id": item_id,
                "image": rel,
                "split": c["split"],
                "labels": {"Foreign Object": float(bool(boxes))},
                "boxes": [{"bbox": b, "category": CATEGORY} for b in boxes],
            }
        )

    jobs = image_jobs(out, ((i, c["_src"]) for i, c in candidates.items()), source, drops)
    run_image_jobs(jobs, image_size, workers, drops, ok)
    rows.sort(key=lambda r: r["id"])
    coco = write_coco(out, rows, [CATEGORY], image_size)
    return write_outputs(
        out,
        "object-cxr",
        "detection",
        rows,
        drops,
        len(candidates),
        image_size,
        source,
        {"labels": ["Foreign Object"], "categories": [CATEGORY], "coco": coco},
    )
