"""MIMIC-CXR-JPG 2.0.0 layout: files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg, report
files/pXX/pSUBJECT/sSTUDY.txt (as in mimic-cxr-reports.zip) and the split/metadata/chexpert
csv.gz files."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.synth.findings import CHEXPERT_LABELS
from cmcgns.data.synth.layouts._csv import label_cell, write_csv
from cmcgns.data.synth.reports import mimic_report_text
from cmcgns.io.atomic import write_json
from cmcgns.data.synth.study import corrupt_file, lateral_view, make_study, save_image, stable_hex, study_rng

SPLIT_FILE = "mimic-cxr-2.0.0-split.csv.gz"
METADATA_FILE = "mimic-cxr-2.0.0-metadata.csv.gz"
CHEXPERT_FILE = "mimic-cxr-2.0.0-chexpert.csv.gz"
# not part of the official layout: what every generated sentence means, for scoring a sampler's clusters
# (cmcgns preprocess carries it into the manifest's sentences as `meaning`; the model never reads it)
MEANINGS_FILE = "synthetic-sentence-meanings.json"


def ids(index: int) -> tuple[int, int]:
    return 10000000 + index // 2, 50000000 + index


def study_dir(subject_id: int, study_id: int) -> Path:
    return Path("files") / f"p{str(subject_id)[:2]}" / f"p{subject_id}" / f"s{study_id}"


def split_of(seed: int, subject_id: int) -> str:
    u = study_rng(seed, subject_id, "split").random()
    return "test" if u < 0.06 else "validate" if u < 0.12 else "train"


def write_study(out: Path, seed: int, index: int, size: int, corrupt: bool) -> list[dict]:
    study = make_study(seed, index, size)
    subject_id, study_id = ids(index)
    folder = study_dir(subject_id, study_id)
    rows = []
    images = [
        (stable_hex(seed, index, "frontal", 8) + "-" + stable_hex(seed, index, "f2", 24), study.view, study.image)
    ]
    if study.rng.random() < 0.4:
        images.append(
            (
                stable_hex(seed, index, "lateral", 8) + "-" + stable_hex(seed, index, "l2", 24),
                "LATERAL",
                lateral_view(study, seed),
            )
        )
    for dicom_id, view, pixels in images:
        save_image(out / folder / f"{dicom_id}.jpg", pixels)
        rows.append(
            {
                "dicom_id": dicom_id,
                "subject_id": subject_id,
                "study_id": study_id,
                "view": view,
                "size": pixels.shape,
                "labels": study.labels,
                "meanings": study.meanings,
            }
        )
    report_path = out / folder.parent / f"s{study_id}.txt"
    report = mimic_report_text(
        study.findings_text, study.impression, study.rng, "PA AND LAT" if len(images) > 1 else study.view
    )
    if corrupt:
        kind = study.rng.integers(0, 3)
        if kind == 0:
            report = "   \n"
        elif kind == 1:
            corrupt_file(out / folder / f"{images[0][0]}.jpg", study.rng)
    report_path.write_text(report, encoding="utf-8")
    return rows


def finalize(out: Path, rows: list[dict], seed: int = 0) -> None:
    meanings = {str(r["study_id"]): r["meanings"] for r in rows}
    write_json(out / MEANINGS_FILE, dict(sorted(meanings.items())))
    write_csv(
        out / SPLIT_FILE,
        ["dicom_id", "study_id", "subject_id", "split"],
        [[r["dicom_id"], r["study_id"], r["subject_id"], split_of(seed, r["subject_id"])] for r in rows],
        gz=True,
    )
    meta_header = [
        "dicom_id",
        "subject_id",
        "study_id",
        "PerformedProcedureStepDescription",
        "ViewPosition",
        "Rows",
        "Columns",
        "StudyDate",
        "StudyTime",
        "ProcedureCodeSequence_CodeMeaning",
        "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning",
    ]
    meta_rows = []
    for r in rows:
        view_meaning = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral"}[r["view"]]
        meta_rows.append(
            [
                r["dicom_id"],
                r["subject_id"],
                r["study_id"],
                "CHEST (PA AND LAT)",
                r["view"],
                r["size"][0],
                r["size"][1],
                21800101 + r["study_id"] % 28,
                "120000.000",
                "CHEST (PA AND LAT)",
                view_meaning,
                "Erect",
            ]
        )
    write_csv(out / METADATA_FILE, meta_header, meta_rows, gz=True)
    studies = {}
    for r in rows:
        studies[(r["subject_id"], r["study_id"])] = r["labels"]
    labels = [[s, t] + [label_cell(lab[name]) for name in CHEXPERT_LABELS] for (s, t), lab in sorted(studies.items())]
    write_csv(out / CHEXPERT_FILE, ["subject_id", "study_id"] + CHEXPERT_LABELS, labels, gz=True)
