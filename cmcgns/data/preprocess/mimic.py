"""MIMIC-CXR-JPG + reports -> pretraining manifest (one frontal image per study, report split
into sections and sentences, official train/validate/test split kept)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cmcgns.data.manifest import canonical_split
from cmcgns.data.preprocess.base import DropReport, cache_candidates, inside, write_outputs
from cmcgns.data.preprocess.tabular import chexpert_label, read_csv
from cmcgns.data.reports.sectioning import report_body, split_sections
from cmcgns.data.reports.sentences import sentence_rows, split_sentences
from cmcgns.data.synth.findings import CHEXPERT_LABELS
from cmcgns.data.synth.layouts.mimic import MEANINGS_FILE
from cmcgns.errors import DataError

FRONTAL = ("PA", "AP")
WHAT = "MIMIC-CXR csv"


MAX_REPORT_BYTES = 1 << 20  # 1 MiB; real MIMIC reports are a few kB
MAX_SENTENCES = 512


def canonical_split_or_none(name: str) -> str | None:
    try:
        return canonical_split(name)
    except DataError:
        return None


def read_report(path: Path, drops: DropReport) -> str | None:
    """A report's text: UTF-8, else latin-1 (counted as repaired); NULs and other control characters
    removed (counted); an oversized file is dropped (None)."""
    size = path.stat().st_size
    if size > MAX_REPORT_BYTES:
        drops.drop(str(path), "oversized_report", f"{size} bytes > {MAX_REPORT_BYTES}")
        return None
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark would hide the first section header
    except UnicodeDecodeError as exc:
        text = raw.decode("latin-1")
        drops.repaired(str(path), "report_not_utf8_read_as_latin1", str(exc)[:120])
    cleaned = _CONTROL.sub(" ", text)
    if cleaned != text:
        drops.repaired(str(path), "control_characters_removed")
    return cleaned


def other_script_letters(text: str) -> int:
    """How many letters of `text` are outside the Latin script, when they are most of its letters
    (a Hebrew, Arabic or Chinese report), else 0."""
    letters = [c for c in text if c.isalpha()]
    other = sum(1 for c in letters if ord(c) >= 0x250)  # beyond Latin Extended-B
    return other if letters and other * 2 > len(letters) else 0


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def synthetic_meanings(source: Path) -> dict[str, dict[str, str]] | None:
    """study id -> {sentence as split here -> semantic key}, from the synthetic generator's sidecar (absent
    from real downloads: None)."""
    path = source / MEANINGS_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); regenerate the synthetic data or delete the file") from None
    return {
        study: {piece: key for text, key in pairs for piece in split_sentences(text)} for study, pairs in raw.items()
    }


def preprocess(
    source: Path, out: Path, image_size: int, workers: int, min_sentences: int = 1, reports_root: Path | None = None
) -> object:
    reports_root = reports_root or source
    splits: dict[str, str] = {}
    conflicting: set[str] = set()
    for r in read_csv(source / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "split"], WHAT):
        if splits.setdefault(r["dicom_id"], r["split"]) != r["split"]:
            conflicting.add(r["dicom_id"])  # listed in two splits: which one is right is unknowable
    metadata = read_csv(
        source / "mimic-cxr-2.0.0-metadata.csv.gz", ["dicom_id", "subject_id", "study_id", "ViewPosition"], WHAT
    )
    labels = {
        (r["subject_id"], r["study_id"]): r
        for r in read_csv(source / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id"], WHAT)
    }
    meanings = synthetic_meanings(source)
    drops = DropReport()
    chosen: dict[tuple[str, str], dict[str, str]] = {}
    for row in metadata:
        key = (row["subject_id"], row["study_id"])
        if row["ViewPosition"] not in FRONTAL:
            drops.drop(row["dicom_id"], "non_frontal_view", row["ViewPosition"])
            continue
        if key in chosen:  # one frontal image per study; prefer PA
            if chosen[key]["ViewPosition"] != "PA" and row["ViewPosition"] == "PA":
                drops.drop(chosen[key]["dicom_id"], "extra_frontal_image", "PA preferred")
                chosen[key] = row
            else:
                drops.drop(row["dicom_id"], "extra_frontal_image", "one image per study")
            continue
        chosen[key] = row
    candidates = {}
    for (subject, study), row in chosen.items():
        if row["dicom_id"] not in splits:
            drops.drop(row["dicom_id"], "no_split", "not in split csv")
            continue
        if row["dicom_id"] in conflicting:
            drops.drop(row["dicom_id"], "conflicting_split", "listed in more than one split")
            continue
        if canonical_split_or_none(splits[row["dicom_id"]]) is None:
            drops.drop(row["dicom_id"], "unknown_split", splits[row["dicom_id"]])
            continue
        folder = Path("files") / f"p{subject[:2]}" / f"p{subject}"
        report_path = reports_root / folder / f"s{study}.txt"
        if not inside(report_path, reports_root):
            drops.drop(str(report_path), "outside_source", f"resolves outside {reports_root}")
            continue
        try:
            text = read_report(report_path, drops)
        except FileNotFoundError:
            drops.drop(str(report_path), "missing_report")
            continue
        except OSError as exc:  # a directory, a permission problem
            drops.drop(str(report_path), "unreadable_report", f"{type(exc).__name__}: {exc.strerror or exc}")
            continue
        if text is None:
            continue
        if not text.strip():
            drops.drop(str(report_path), "empty_report")
            continue
        sentences = sentence_rows(report_body(split_sections(text)))
        if meanings is not None:  # synthetic data only; None where a sentence has no recorded meaning
            for s in sentences:
                s["meaning"] = meanings.get(study, {}).get(s["text"])
        if len(sentences) > MAX_SENTENCES:
            drops.drop(str(report_path), "oversized_report", f"{len(sentences)} sentences > {MAX_SENTENCES}")
            continue
        if len(sentences) < min_sentences:
            other = other_script_letters(text)
            if other:  # the splitter keeps Latin-script words: say what happened, not "too few"
                drops.drop(str(report_path), "non_latin_script", f"{other} letters outside the Latin script")
            else:
                drops.drop(str(report_path), "too_few_sentences", f"{len(sentences)} < {min_sentences}")
            continue
        lab = labels.get((subject, study), {})
        try:
            study_labels = {name: chexpert_label(lab.get(name, "")) for name in CHEXPERT_LABELS}
        except ValueError:
            raise DataError(
                f"{source / 'mimic-cxr-2.0.0-chexpert.csv.gz'}: study {study}: labels must be blank, 1.0, 0.0 or -1.0"
            ) from None
        candidates[row["dicom_id"]] = {
            "id": row["dicom_id"],
            "subject_id": subject,
            "study_id": study,
            "split": splits[row["dicom_id"]],
            "view": row["ViewPosition"],
            "sentences": sentences,
            "labels": study_labels,
            "_src": source / folder / f"s{study}" / f"{row['dicom_id']}.jpg",
        }
    rows = cache_candidates(out, candidates, image_size, workers, drops, source)
    rows.sort(key=lambda r: (r["split"], r["study_id"]))
    return write_outputs(
        out, "mimic-cxr", "pretrain", rows, drops, len(metadata), image_size, source, {"labels": CHEXPERT_LABELS}
    )
