"""CheXpert -> classification manifest on the 5 competition labels. Official `valid` becomes the
test split; from `train`, whole patients are held out as val until 5,000 images (MGCA's size; at most
10 % of train.csv's images on small data), so no patient is in both. Uncertain labels (-1) follow a policy:
`mgca` (default; MGCA's and the CheXpert paper's best per-label choice) maps them to 1 for
Atelectasis, Edema and Pleural Effusion (U-ones) and to 0 for Cardiomegaly and Consolidation
(U-zeros); `ones` and `zeros` apply one rule to every label."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cmcgns.data.preprocess.base import add_candidate, DropReport, cache_candidates, write_outputs
from cmcgns.data.preprocess.tabular import chexpert_label, read_csv
from cmcgns.errors import DataError

COMPETITION_LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
ROOT = "CheXpert-v1.0-small"


U_ONES = ("Atelectasis", "Edema", "Pleural Effusion")
U_ZEROS = ("Cardiomegaly", "Consolidation")
POLICIES = ("mgca", "ones", "zeros")


def uncertain_value(label: str, policy: str) -> float:
    """The value an uncertain (-1) mention of `label` becomes under `policy`."""
    if policy == "mgca":
        return 1.0 if label in U_ONES else 0.0
    return {"ones": 1.0, "zeros": 0.0}[policy]


def _value(raw: str, policy: str, label: str = "") -> float:
    value = chexpert_label(raw)
    if value is None:
        return 0.0
    if value == -1.0:
        return uncertain_value(label, policy)
    return value


def read_index(csv_path: Path, official: str, uncertain: str, drops: DropReport) -> tuple[dict[str, dict], int]:
    """One official CheXpert csv -> ({item_id: candidate row}, rows considered). ``Path`` is
    relative to the folder holding CheXpert-v1.0-small; lateral views are dropped."""
    if uncertain not in POLICIES:
        raise ValueError(f"uncertain policy must be one of {', '.join(POLICIES)}")
    base = csv_path.parent
    candidates: dict[str, dict] = {}
    table = read_csv(csv_path, ["Path", "Frontal/Lateral", *COMPETITION_LABELS])
    for lineno, row in enumerate(table, start=2):
        if row["Frontal/Lateral"] != "Frontal":
            drops.drop(row["Path"], "non_frontal_view")
            continue
        parts = row["Path"].split("/")  # always POSIX in the official csv; string ops keep 200k rows fast
        if len(parts) < 5:
            raise DataError(f"{csv_path}:{lineno}: Path {row['Path']!r} is not <root>/<split>/<patient>/<study>/<view>")
        patient = parts[2]
        split = "test" if official == "valid" else "train"  # val: whole patients held out afterwards
        item_id = "_".join(parts[1:]).rsplit(".", 1)[0]
        try:
            labels = {k: _value(row[k], uncertain, k) for k in COMPETITION_LABELS}
            raw = {k: chexpert_label(row[k]) for k in COMPETITION_LABELS}
        except ValueError:
            raise DataError(f"{csv_path}:{lineno}: label values must be blank, 1.0, 0.0 or -1.0") from None
        add_candidate(
            candidates,
            {
                "id": item_id,
                "split": split,
                "patient": patient,
                "labels": labels,
                "raw_labels": raw,  # before the uncertainty policy: what the 5x200 rule reads
                "_src": base.parent / row["Path"],
            },
            drops,
            f"{csv_path}:{lineno}",
        )
    return candidates, len(table)


VAL_IMAGES = 5000  # MGCA's CheXpert validation draw: 5,000 training images
MAX_VAL_FRACTION = 0.1  # of train.csv's images, on small (e.g. synthetic) data


def hold_out_patients(candidates: dict[str, dict], target_images: int) -> dict[str, int]:
    """Move whole patients from train to val, in the order of a hash of their id, until `target_images`
    images are held out (MGCA's 5,000, drawn here so that no patient is in both: MGCA's own draw is
    per image). Deterministic for a given train.csv; returns the images and patients held out."""
    by_patient: dict[str, list[dict]] = {}
    for row in candidates.values():
        if row["split"] == "train":
            by_patient.setdefault(row["patient"], []).append(row)
    order = sorted(by_patient, key=lambda p: hashlib.sha256(p.encode()).hexdigest())
    held, patients = 0, 0
    for patient in order:
        if held >= target_images:
            break
        for row in by_patient[patient]:
            row["split"] = "val"
        held += len(by_patient[patient])
        patients += 1
    return {"images": held, "patients": patients}


def preprocess(
    source: Path, out: Path, image_size: int, workers: int, uncertain: str = "mgca", val_images: int = VAL_IMAGES
) -> object:
    base = source / ROOT if (source / ROOT).is_dir() else source
    drops = DropReport()
    candidates: dict[str, dict] = {}
    considered = 0
    for official, csv_name in (("train", "train.csv"), ("valid", "valid.csv")):
        found, n = read_index(base / csv_name, official, uncertain, drops)
        for item_id in found.keys() & candidates.keys():
            drops.drop(item_id, "duplicate_id", f"in train.csv and valid.csv; the {csv_name} entry is dropped")
            del found[item_id]
        candidates.update(found)
        considered += n
    train_images = sum(1 for c in candidates.values() if c["split"] == "train")
    target = min(val_images, int(train_images * MAX_VAL_FRACTION))
    held = hold_out_patients(candidates, target)
    rows = cache_candidates(out, candidates, image_size, workers, drops, source)
    return write_outputs(
        out,
        "chexpert",
        "classification",
        rows,
        drops,
        considered,
        image_size,
        source,
        {
            "labels": COMPETITION_LABELS,
            "uncertain_policy": uncertain,
            "val_holdout": {
                **held,
                "rule": f"whole patients of train.csv by id hash until min({val_images}, 10 % of its images)",
            },
        },
    )
