"""COVIDx CXR -> classification manifest; official train/val/test lists kept.

The 3-class releases (labels normal / pneumonia / COVID-19, as MGCA evaluates) give a multi-class
manifest: one-hot labels over CLASSES and `label_type: multiclass` in meta.json. The binary
releases (positive / negative, COVIDx CXR-3/4) give one label, COVID-19. One list mixing the two
vocabularies is refused."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.preprocess.base import add_candidate, DropReport, cache_candidates, require_file, write_outputs
from cmcgns.errors import DataError

CLASSES = ["normal", "pneumonia", "COVID-19"]
THREE_CLASS = {"normal": "normal", "pneumonia": "pneumonia", "covid-19": "COVID-19", "covid": "COVID-19"}
BINARY = {"positive": 1.0, "negative": 0.0}


def preprocess(source: Path, out: Path, image_size: int, workers: int) -> object:
    drops = DropReport()
    candidates = {}
    considered = 0
    vocabulary: tuple[str, str] | None = None  # ("three" | "binary", where it was first seen)
    for split in ("train", "val", "test"):
        index = source / f"{split}.txt"
        if split == "val" and not index.exists():
            continue  # older COVIDx releases have no val list
        require_file(index, "COVIDx list")
        try:
            lines = index.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise DataError(f"{index}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            considered += 1
            parts = line.split()
            if len(parts) < 3:
                raise DataError(f"{index}:{lineno}: expected '<patient> <file> <label> [source]', got {line!r}")
            patient, filename, label = parts[0], parts[1], parts[2].lower()
            kind = "three" if label in THREE_CLASS else "binary" if label in BINARY else None
            if kind is None:
                drops.drop(f"{index}:{lineno}", "unknown_label", label)
                continue
            if vocabulary is None:
                vocabulary = (kind, f"{index}:{lineno}")
            elif vocabulary[0] != kind:
                raise DataError(
                    f"{index}:{lineno}: label {parts[2]!r} mixes the binary (positive/negative) and the 3-class "
                    f"(normal/pneumonia/COVID-19) COVIDx vocabularies (first label at {vocabulary[1]}); use one release"
                )
            if kind == "three":
                labels = {c: float(THREE_CLASS[label] == c) for c in CLASSES}
            else:
                labels = {"COVID-19": BINARY[label]}
            item_id = f"{split}_{Path(filename).stem}"
            add_candidate(
                candidates,
                {
                    "id": item_id,
                    "patient": patient,
                    "split": split,
                    "labels": labels,
                    "_src": source / split / filename,
                },
                drops,
                f"{index}:{lineno}",
            )
    rows = cache_candidates(out, candidates, image_size, workers, drops, source)
    three = vocabulary is not None and vocabulary[0] == "three"
    meta = (
        {"labels": CLASSES, "label_type": "multiclass"} if three else {"labels": ["COVID-19"], "label_type": "binary"}
    )
    return write_outputs(out, "covidx", "classification", rows, drops, considered, image_size, source, meta)
