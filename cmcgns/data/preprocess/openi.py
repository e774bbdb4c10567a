"""Open-i (IU X-ray) official layout -> pretraining manifest with labels: `NLMCXR_png/<image id>.png`
and `ecgen-radiology/<n>.xml` (or the NLMCXR_reports.tgz archive) in the source folder.

Frontal images only: views come from a DICOM metadata table (`nlmcxr_dicom_metadata.csv[.gz]` in
the source folder, else torchxrayvision's installed copy); an image the table does not know is kept
and counted (meta `views_unknown`). Text: FINDINGS then IMPRESSION, split into sentences as for
MIMIC-CXR; a report with neither is dropped. Labels from the MeSH terms (`cmcgns.data.reports.openi`).
Split: deterministic by report (one report per patient), 70/10/20 train/val/test.
"""

from __future__ import annotations

from pathlib import Path

from cmcgns.data.preprocess.base import DropReport, add_candidate, cache_candidates, stable_split, write_outputs
from cmcgns.data.reports.openi import LABELS, iter_reports, packaged_view_table, parse_report, read_views
from cmcgns.data.reports.sentences import sentence_rows
from cmcgns.errors import DataError

IMAGE_DIR = "NLMCXR_png"
REPORT_DIR = "ecgen-radiology"
REPORT_ARCHIVE = "NLMCXR_reports.tgz"
VIEW_TABLES = ("nlmcxr_dicom_metadata.csv.gz", "nlmcxr_dicom_metadata.csv")
FRONTAL = ("PA", "AP")
SPLIT = {"train": 0.7, "val": 0.1, "test": 0.2}


def _reports_source(source: Path) -> Path:
    for candidate in (source / REPORT_DIR, source / REPORT_ARCHIVE):
        if candidate.exists():
            return candidate
    raise DataError(f"{source}: neither {REPORT_DIR}/ nor {REPORT_ARCHIVE} found — is this the Open-i download layout?")


def _view_table(source: Path) -> tuple[dict[str, str], str]:
    for name in VIEW_TABLES:
        if (source / name).is_file():
            return read_views(source / name), str(source / name)
    packaged = packaged_view_table()
    if packaged is not None:
        return read_views(packaged), f"torchxrayvision ({packaged.name})"
    return {}, "none (every image kept)"


def preprocess(source: Path, out: Path, image_size: int, workers: int) -> object:
    reports_source = _reports_source(source)
    if not (source / IMAGE_DIR).is_dir():
        raise DataError(f"{source / IMAGE_DIR}: image folder not found — is this the Open-i download layout?")
    views, views_from = _view_table(source)
    drops = DropReport()
    candidates: dict[str, dict] = {}
    considered, unknown_views = 0, 0
    for name, data in iter_reports(reports_source):
        report = parse_report(data, name)
        sentences = sentence_rows(
            [(section.lower(), report.sections.get(section, "")) for section in ("FINDINGS", "IMPRESSION")]
        )
        if not report.images:
            considered += 1
            drops.drop(name, "no_images", "the report references no image")
            continue
        for image_id in report.images:
            considered += 1
            view = views.get(image_id)
            if view is None:
                unknown_views += 1
            elif view not in FRONTAL:
                drops.drop(image_id, "non_frontal_view", view)
                continue
            if not sentences:
                drops.drop(image_id, "no_report_text", f"{name}: no FINDINGS or IMPRESSION")
                continue
            add_candidate(
                candidates,
                {
                    "id": image_id,
                    "split": stable_split(report.report_id, SPLIT),
                    "patient": report.report_id,
                    "report_id": report.report_id,
                    "labels": report.labels(),
                    "sentences": sentences,
                    "mesh_major": list(report.major),
                    "_src": source / IMAGE_DIR / f"{image_id}.png",
                },
                drops,
                name,
            )
    rows = cache_candidates(out, candidates, image_size, workers, drops, source)
    return write_outputs(
        out,
        "openi",
        "pretrain",
        rows,
        drops,
        considered,
        image_size,
        source,
        {
            "labels": LABELS,
            "label_source": "MeSH major and automatic terms (torchxrayvision's mapping, CheXpert names)",
            "views_from": views_from,
            "views_unknown": unknown_views,
            "licence": "Open-i reports: CC BY-NC-ND 4.0 (NLM / Indiana University)",
        },
    )
