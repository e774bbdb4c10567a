"""SIIM-ACR Pneumothorax Segmentation layout: dicom-images-train/<study>/<series>/<sop>.dcm and
train-rle.csv (ImageId, EncodedPixels) in the competition's relative run-length format."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmcgns.data.formats import siim_rle
from cmcgns.data.formats.dicom import write_dicom
from cmcgns.data.synth.layouts._csv import write_csv
from cmcgns.data.synth.study import corrupt_file, make_study, stable_uid

RLE_FILE = "train-rle.csv"


def write_study(out: Path, seed: int, index: int, size: int, corrupt: bool) -> list[dict]:
    study = make_study(seed, index, size, force="pneumothorax" if index % 3 == 0 else None)
    sop = stable_uid(seed, index, "sop")
    study_uid, series_uid = stable_uid(seed, index, "st"), stable_uid(seed, index, "se")
    path = out / "dicom-images-train" / study_uid / series_uid / f"{sop}.dcm"
    write_dicom(
        path,
        study.image,
        patient_id=f"P{index:06d}",
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop,
        view=study.view,
    )
    if corrupt:
        corrupt_file(path, study.rng)
    ptx = study.finding("pneumothorax")
    mask = ptx.mask if ptx is not None and ptx.mask is not None and not ptx.uncertain else np.zeros_like(study.image)
    return [{"image_id": sop, "rle": siim_rle.encode(mask)}]


def finalize(out: Path, rows: list[dict], seed: int = 0) -> None:  # noqa: ARG001 (interface)
    # the official header has a leading space before EncodedPixels
    write_csv(out / RLE_FILE, ["ImageId", " EncodedPixels"], [[r["image_id"], " " + r["rle"]] for r in rows])
