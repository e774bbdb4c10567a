"""CheXpert-v1.0-small layout: CheXpert-v1.0-small/{train,valid}/patientNNNNN/studyN/viewN_frontal.jpg
with train.csv / valid.csv (Path, Sex, Age, Frontal/Lateral, AP/PA, 14 labels)."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.synth.findings import CHEXPERT_LABELS
from cmcgns.data.synth.layouts._csv import label_cell, write_csv
from cmcgns.data.synth.study import corrupt_file, make_study, save_image, study_rng

ROOT = "CheXpert-v1.0-small"


def write_study(out: Path, seed: int, index: int, size: int, corrupt: bool) -> list[dict]:
    study = make_study(seed, index, size)
    split = "valid" if study_rng(seed, index, "split").random() < 0.15 else "train"
    rel = Path(ROOT) / split / f"patient{index + 1:05d}" / "study1" / "view1_frontal.jpg"
    save_image(out / rel, study.image)
    if corrupt:
        corrupt_file(out / rel, study.rng)
    labels = study.labels
    if split == "valid":  # the official validation set is labelled by radiologists: no uncertain/blank
        labels = {k: (1.0 if v == 1.0 or v == -1.0 else 0.0) for k, v in labels.items()}
    sex = "Female" if study.rng.random() < 0.5 else "Male"
    return [
        {
            "split": split,
            "row": [rel.as_posix(), sex, int(study.rng.integers(20, 90)), "Frontal", study.view]
            + [label_cell(labels[name]) for name in CHEXPERT_LABELS],
        }
    ]


def finalize(out: Path, rows: list[dict], seed: int = 0) -> None:  # noqa: ARG001 (interface)
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA"] + CHEXPERT_LABELS
    for split in ("train", "valid"):
        write_csv(out / ROOT / f"{split}.csv", header, [r["row"] for r in rows if r["split"] == split])
