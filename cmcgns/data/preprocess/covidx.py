"""COVIDx CXR -> classification manifest; official train/val/test lists kept."""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.preprocess.base import add_candidate, DropReport, cache_candidates, require_file, write_outputs
from cmcgns.errors import DataError

POSITIVE = {"positive", "covid-19", "covid"}
NEGATIVE = {"negative", "normal", "pneumonia"}


def preprocess(source: Path, out: Path, image_size: int, workers: int) -> object:
    drops = DropReport()
    candidates = {}
    considered = 0
    for split in ("train", "val", "test"):
        index = source / f"{split}.txt"
        if split == "val" and not index.exists():
            continue  # older COVIDx releases have no val list
        require_file(index, "COVIDx list")
        try:
            lines = index.read_text(encoding="utf-8").splitlines()
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
            if label not in POSITIVE | NEGATIVE:
                drops.drop(f"{index}:{lineno}", "unknown_label", label)
                continue
            item_id = f"{split}_{Path(filename).stem}"
            add_candidate(
                candidates,
                {
                    "id": item_id,
                    "patient": patient,
                    "split": split,
                    "labels": {"COVID-19": float(label in POSITIVE)},
                    "_src": source / split / filename,
                },
                drops,
                f"{index}:{lineno}",
            )
    rows = cache_candidates(out, candidates, image_size, workers, drops, source)
    return write_outputs(
        out, "covidx", "classification", rows, drops, considered, image_size, source, {"labels": ["COVID-19"]}
    )
