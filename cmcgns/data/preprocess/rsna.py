"""RSNA Pneumonia -> classification (Pneumonia), detection (COCO, class "opacity") and
segmentation (box masks, as in MGCA's rsna-seg) manifests, patient-level 70/15/15 split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmcgns.data.preprocess.base import DropReport, image_jobs, run_image_jobs, stable_split, write_mask, write_outputs
from cmcgns.data.preprocess.coco import usable_boxes, write_coco
from cmcgns.data.preprocess.tabular import read_csv
from cmcgns.errors import DataError

SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}
CATEGORY = "opacity"


def read_labels(labels_csv: Path, duplicates: list[str] | None = None) -> dict[str, dict]:
    """stage_2_train_labels.csv -> {patientId: {"target": 0|1, "boxes": [(x, y, w, h), ...]}}
    in original pixels; a patient has one row per box (or one empty row when negative)."""
    duplicates = [] if duplicates is None else duplicates
    table = read_csv(labels_csv, ["patientId", "x", "y", "width", "height", "Target"])
    patients: dict[str, dict] = {}
    for lineno, row in enumerate(table, start=2):
        p = patients.setdefault(row["patientId"], {"target": 0, "boxes": []})
        try:
            target = int(float(row["Target"]))
            box = tuple(float(row[k]) for k in ("x", "y", "width", "height")) if target == 1 else None
        except ValueError:
            raise DataError(f"{labels_csv}:{lineno}: non-numeric box/target values {row}") from None
        if target not in (0, 1):
            raise DataError(f"{labels_csv}:{lineno}: Target must be 0 or 1, got {row['Target']!r}")
        if box is not None and box in p["boxes"]:
            duplicates.append(f"{labels_csv}:{lineno}")  # the same box listed twice: counted once
        elif box is not None:
            p["boxes"].append(box)
        p["target"] = max(p["target"], target)
    return patients


def preprocess(source: Path, out: Path, image_size: int, workers: int) -> object:
    duplicates: list[str] = []
    patients = read_labels(source / "stage_2_train_labels.csv", duplicates)
    drops = DropReport()
    for where in duplicates:
        drops.drop(where, "duplicate_box", "the same box listed again")
    rows: list[dict] = []

    def ok(pid: str, rel: str, hw: tuple[int, int]) -> None:
        p = patients[pid]
        boxes = usable_boxes(p["boxes"], hw, image_size, pid, drops)
        if p["target"] and not boxes:
            drops.drop(pid, "no_valid_box", "positive study whose boxes are all unusable")
            return
        mask = np.zeros((image_size, image_size), dtype=np.uint8)
        for x, y, w, h in boxes:
            mask[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))] = 1
        mask_rel = write_mask(out, rel, mask)
        rows.append(
            {
                "id": pid,
                "image": rel,
                "mask": mask_rel,
                "split": stable_split(pid, SPLITS),
                "labels": {"Pneumonia": float(p["target"])},
                "boxes": [{"bbox": b, "category": CATEGORY} for b in boxes],
            }
        )

    jobs = image_jobs(out, ((pid, source / "stage_2_train_images" / f"{pid}.dcm") for pid in patients), source, drops)
    run_image_jobs(jobs, image_size, workers, drops, ok)
    rows.sort(key=lambda r: r["id"])
    coco = write_coco(out, rows, [CATEGORY], image_size)
    return write_outputs(
        out,
        "rsna",
        "detection",
        rows,
        drops,
        len(patients),
        image_size,
        source,
        {"labels": ["Pneumonia"], "categories": [CATEGORY], "coco": coco, "mask_classes": ["background", CATEGORY]},
    )
