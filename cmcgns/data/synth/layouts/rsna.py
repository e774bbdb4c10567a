"""RSNA Pneumonia Detection Challenge layout: stage_2_train_images/<patientId>.dcm,
stage_2_train_labels.csv (patientId,x,y,width,height,Target) and stage_2_detailed_class_info.csv."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.formats.dicom import write_dicom
from cmcgns.data.synth.layouts._csv import write_csv
from cmcgns.data.synth.study import corrupt_file, make_study, stable_hex, stable_uid


def write_study(out: Path, seed: int, index: int, size: int, corrupt: bool) -> list[dict]:
    study = make_study(seed, index, size, force="consolidation" if index % 3 == 0 else None)
    pid = "-".join(
        [
            stable_hex(seed, index, "pid", 8),
            stable_hex(seed, index, "a", 4),
            stable_hex(seed, index, "b", 4),
            stable_hex(seed, index, "c", 4),
            stable_hex(seed, index, "d", 12),
        ]
    )
    path = out / "stage_2_train_images" / f"{pid}.dcm"
    write_dicom(
        path,
        study.image,
        patient_id=pid,
        study_uid=stable_uid(seed, index, "st"),
        series_uid=stable_uid(seed, index, "se"),
        sop_uid=stable_uid(seed, index, "sop"),
        view=study.view,
    )
    if corrupt:
        corrupt_file(path, study.rng)
    boxes = []
    for f in study.findings:
        if f.kind == "consolidation" and f.box is not None and not f.uncertain:
            x0, y0, x1, y1 = (v * size for v in f.box)
            boxes.append([round(x0, 1), round(y0, 1), round(x1 - x0, 1), round(y1 - y0, 1)])
    if boxes:
        klass = "Lung Opacity"
    else:
        klass = "Normal" if study.labels.get("No Finding") == 1.0 else "No Lung Opacity / Not Normal"
    return [{"pid": pid, "boxes": boxes, "class": klass}]


def finalize(out: Path, rows: list[dict], seed: int = 0) -> None:  # noqa: ARG001 (interface)
    labels = []
    for r in rows:
        if r["boxes"]:
            labels.extend([r["pid"], *box, 1] for box in r["boxes"])
        else:
            labels.append([r["pid"], "", "", "", "", 0])
    write_csv(out / "stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], labels)
    details = [[r["pid"], r["class"]] for r in rows for _ in (r["boxes"] or [None])]
    write_csv(out / "stage_2_detailed_class_info.csv", ["patientId", "class"], details)
