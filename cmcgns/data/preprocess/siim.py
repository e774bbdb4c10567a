"""SIIM-ACR pneumothorax -> segmentation manifest (PNG masks decoded from train-rle.csv; rows
with several runs for one image are merged), patient-level 70/15/15 split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cmcgns.data.formats import siim_rle
from cmcgns.data.preprocess.base import (
    DropReport,
    image_jobs,
    resize_mask,
    run_image_jobs,
    stable_split,
    write_mask,
    write_outputs,
)
from cmcgns.data.preprocess.tabular import read_csv

SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}


def read_rles(rle_csv: Path) -> dict[str, list[str]]:
    """train-rle.csv -> {ImageId: [run-length strings]} (the header's " EncodedPixels" has a
    leading space in the official file; an image with several pneumothoraces has several rows)."""
    rles: dict[str, list[str]] = {}
    for row in read_csv(rle_csv, ["ImageId", "EncodedPixels"]):
        rles.setdefault(row["ImageId"], []).append(row["EncodedPixels"])
    return rles


def decode_merged(rles: list[str], height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    for rle in rles:
        mask |= siim_rle.decode(rle, height, width)
    return mask


def find_dicoms(root: Path) -> dict[str, Path]:
    """SOP instance UID -> file, following symlinked study folders (each real folder once, so a link
    loop ends); a link leading outside the source is then dropped as `outside_source`, not reported
    as a missing image."""
    found: dict[str, Path] = {}
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        for name in files:
            if name.endswith(".dcm"):
                found[Path(name).stem] = Path(folder) / name
    return found


def preprocess(source: Path, out: Path, image_size: int, workers: int) -> object:
    rles = read_rles(source / "train-rle.csv")
    dicoms = find_dicoms(source / "dicom-images-train")
    drops = DropReport()
    rows: list[dict] = []
    present = {}
    for image_id in rles:
        if image_id in dicoms:
            present[image_id] = dicoms[image_id]
        else:
            drops.drop(image_id, "missing_image", "no DICOM with this SOP instance UID")

    def ok(image_id: str, rel: str, hw: tuple[int, int]) -> None:
        try:
            mask = decode_merged(rles[image_id], *hw)
        except ValueError as exc:
            drops.drop(image_id, "bad_rle", str(exc))
            return
        small = resize_mask(mask, image_size)
        mask_rel = write_mask(out, rel, small.astype(np.uint8))
        rows.append(
            {
                "id": image_id,
                "image": rel,
                "mask": mask_rel,
                "split": stable_split(image_id, SPLITS),
                "labels": {"Pneumothorax": float(mask.any())},
            }
        )  # full resolution: tiny ones survive

    run_image_jobs(image_jobs(out, present.items(), source, drops), image_size, workers, drops, ok)
    rows.sort(key=lambda r: r["id"])
    return write_outputs(
        out,
        "siim",
        "segmentation",
        rows,
        drops,
        len(rles),
        image_size,
        source,
        {"labels": ["Pneumothorax"], "mask_classes": ["background", "pneumothorax"]},
    )
