"""CheXpert -> classification manifest on the 5 competition labels. Official `valid` becomes the
test split; `train` is split by patient into train/val. Uncertain labels follow a policy."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.preprocess.base import DropReport, cache_candidates, stable_split, write_outputs
from cmcgns.data.preprocess.tabular import read_csv

COMPETITION_LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
ROOT = "CheXpert-v1.0-small"


def _value(raw: str, policy: str) -> float:
    if raw == "":
        return 0.0
    value = float(raw)
    if value == -1.0:
        return {"ones": 1.0, "zeros": 0.0}[policy]
    return value


def preprocess(source: Path, out: Path, image_size: int, workers: int, uncertain: str = "ones") -> object:
    if uncertain not in ("ones", "zeros"):
        raise ValueError("uncertain policy must be 'ones' or 'zeros'")
    base = source / ROOT if (source / ROOT).is_dir() else source
    drops = DropReport()
    candidates = {}
    considered = 0
    for official, csv_name in (("train", "train.csv"), ("valid", "valid.csv")):
        for row in read_csv(base / csv_name, ["Path", "Frontal/Lateral", *COMPETITION_LABELS]):
            considered += 1
            if row["Frontal/Lateral"] != "Frontal":
                drops.drop(row["Path"], "non_frontal_view")
                continue
            rel = Path(row["Path"])
            src = base.parent / rel  # Path is relative to the folder that holds CheXpert-v1.0-small
            patient = rel.parts[2] if len(rel.parts) > 2 else row["Path"]
            split = "test" if official == "valid" else stable_split(patient, {"train": 0.9, "val": 0.1})
            item_id = "_".join(rel.with_suffix("").parts[1:])
            candidates[item_id] = {"id": item_id, "split": split, "patient": patient,
                                   "labels": {k: _value(row[k], uncertain) for k in COMPETITION_LABELS}, "_src": src}
    rows = cache_candidates(out, candidates, image_size, workers, drops)
    return write_outputs(out, "chexpert", "classification", rows, drops, considered, image_size, source,
                         {"labels": COMPETITION_LABELS, "uncertain_policy": uncertain})
