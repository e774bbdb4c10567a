"""Open-i (IU X-ray) layout: `ecgen-radiology/<n>.xml` reports and `NLMCXR_png/<image id>.png`.

Reports: the real 3,955 Open-i reports shipped in torchxrayvision, read from the installed package
at run time (never copied into this repository; CC BY-NC-ND 4.0), one per study in report order
(at most 3,955 studies); each report's frontal images are drawn from its MeSH major terms (kind,
side, zone, severity where the term gives them) and its lateral ones (by the DICOM view table) as
laterals. Without torchxrayvision, or with CMCGNS_OPENI_REPORTS=synthetic, the generator's own
reports are written in the same XML form. `data_kind()` says which, for every result row.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from cmcgns.data.reports.openi import (
    OpeniReport,
    iter_reports,
    packaged_reports_archive,
    packaged_view_table,
    parse_report,
    read_views,
)
from cmcgns.data.synth.anatomy import Canvas, Geometry, draw_chest, finish
from cmcgns.data.synth.findings import Finding, draw_findings
from cmcgns.data.synth.study import corrupt_file, lateral_view, make_study, save_image, study_rng
from cmcgns.io.atomic import write_bytes

REAL_KIND = "synthetic images, real Open-i reports"

# MeSH major term heads -> the generator's finding kinds
MESH_KINDS = {
    "pleural effusion": "effusion",
    "cardiomegaly": "cardiomegaly",
    "pulmonary atelectasis": "atelectasis",
    "atelectasis": "atelectasis",
    "opacity": "consolidation",
    "airspace disease": "consolidation",
    "consolidation": "consolidation",
    "infiltrate": "consolidation",
    "pneumonia": "consolidation",
    "density": "consolidation",
    "pneumothorax": "pneumothorax",
    "nodule": "nodule",
    "mass": "nodule",
    "granuloma": "nodule",
    "calcified granuloma": "nodule",
    "pulmonary edema": "edema",
    "pulmonary congestion": "edema",
    "edema": "edema",
    "catheters, indwelling": "support_device",
    "implanted medical device": "support_device",
    "medical device": "support_device",
    "tubes": "support_device",
}
ZONES = {"upper lobe": "upper", "apex": "upper", "middle lobe": "middle", "lingula": "middle", "lower lobe": "lower"}
SEVERITY = {
    "mild": "mild",
    "small": "mild",
    "minimal": "mild",
    "moderate": "moderate",
    "severe": "severe",
    "large": "severe",
}


def uses_real_reports() -> bool:
    return os.environ.get("CMCGNS_OPENI_REPORTS", "real") != "synthetic" and packaged_reports_archive() is not None


def data_kind() -> str:
    return REAL_KIND if uses_real_reports() else "synthetic"


@functools.lru_cache(maxsize=1)
def _real_reports() -> tuple[tuple[str, bytes, OpeniReport], ...]:
    archive = packaged_reports_archive()
    assert archive is not None
    return tuple((Path(name).name, data, parse_report(data, name)) for name, data in iter_reports(archive))


@functools.lru_cache(maxsize=1)
def _views() -> dict[str, str]:
    table = packaged_view_table()
    return read_views(table) if table is not None else {}


def findings_from_mesh(major: tuple[str, ...], rng: np.random.Generator) -> list[Finding]:
    """One finding per MeSH major term the generator can draw, its attributes from the term's parts."""
    findings: list[Finding] = []
    for term in major:
        head, *parts = [p.strip().lower() for p in term.split("/")]
        kind = MESH_KINDS.get(head)
        if kind is None or any(f.kind == kind for f in findings):
            continue
        sides = [p for p in parts if p in ("right", "left", "bilateral")]
        side = sides[0] if sides else str(rng.choice(("right", "left")))
        zone = next(
            (ZONES[p] for p in parts if p in ZONES),
            "base" if "base" in parts else str(rng.choice(("upper", "middle", "lower"))),
        )
        severity = next((SEVERITY[p] for p in parts if p in SEVERITY), "moderate")
        if kind in ("effusion", "atelectasis"):
            zone = "base"
        elif kind == "pneumothorax":
            zone = "apex"
        elif kind == "edema":
            side, zone = "bilateral", "diffuse"
        elif kind in ("cardiomegaly", "support_device"):
            side, zone = "midline", "diffuse"
        elif zone == "base":
            zone = "lower"
        if side == "bilateral" and kind in ("consolidation", "nodule", "pneumothorax"):
            side = "right"
        subtype = "central venous catheter" if kind == "support_device" else ""
        findings.append(Finding(kind, side, zone, severity, False, subtype=subtype))
    return findings


def _frontal(seed: int, index: int, size: int, findings: list[Finding]) -> np.ndarray:
    rng = study_rng(seed, index, "openi")
    canvas = Canvas(size)
    geo = Geometry.sample(rng)
    img, masks = draw_chest(canvas, geo, rng)
    return finish(draw_findings(img, masks, findings, canvas, geo, rng), rng)


def _synthetic_xml(index: int, findings_text: str, impression: str, major: list[str], image_id: str) -> bytes:
    mesh = "".join(f"<major>{escape(t)}</major>" for t in major) or "<major>normal</major>"
    abstract = (
        f'<AbstractText Label="FINDINGS">{escape(findings_text)}</AbstractText>'
        f'<AbstractText Label="IMPRESSION">{escape(impression)}</AbstractText>'
    )
    body = f"<MedlineCitation><Article><Abstract>{abstract}</Abstract></Article></MedlineCitation>"
    xml = f'<eCitation><uId id="CXR{index + 1}"/>{body}<MeSH>{mesh}</MeSH><parentImage id="{image_id}"/></eCitation>'
    return f'<?xml version="1.0" encoding="utf-8"?>\n{xml}\n'.encode()


MESH_OF_KIND = {
    "effusion": "Pleural Effusion",
    "cardiomegaly": "Cardiomegaly",
    "atelectasis": "Pulmonary Atelectasis",
    "consolidation": "Consolidation",
    "pneumothorax": "Pneumothorax",
    "nodule": "Nodule",
    "edema": "Pulmonary Edema",
    "support_device": "Catheters, Indwelling",
}


def write_study(out: Path, seed: int, index: int, size: int, corrupt: bool) -> list[dict]:
    written: list[Path] = []
    if uses_real_reports():
        reports = _real_reports()
        if index >= len(reports):
            return []  # the real collection has 3,955 reports
        name, data, report = reports[index]
        findings = findings_from_mesh(report.major, study_rng(seed, index, "mesh"))
        views = _views()
        for k, image_id in enumerate(report.images):
            lateral = views.get(image_id, "PA") not in ("PA", "AP")
            if lateral:
                study = make_study(seed, index, size)
                pixels = lateral_view(study, seed)
            else:
                pixels = _frontal(seed, index * 8 + k, size, findings)
            path = out / "NLMCXR_png" / f"{image_id}.png"
            save_image(path, pixels)
            written.append(path)
        write_bytes(out / "ecgen-radiology" / name, data)
    else:
        study = make_study(seed, index, size)
        image_id = f"CXR{index + 1}_IM-{index % 10000:04d}-1001"
        major = [
            "/".join(p for p in (MESH_OF_KIND[f.kind], f.side if f.side not in ("midline",) else "", f.severity) if p)
            for f in study.findings
            if not f.uncertain
        ]
        path = out / "NLMCXR_png" / f"{image_id}.png"
        save_image(path, study.image)
        written.append(path)
        write_bytes(
            out / "ecgen-radiology" / f"{index + 1}.xml",
            _synthetic_xml(index, study.findings_text, study.impression, major, image_id),
        )
    if corrupt and written:
        corrupt_file(written[0], study_rng(seed, index, "corrupt-file"))
    return [{"index": index}]


def finalize(out: Path, rows: list[dict], seed: int = 0) -> None:  # noqa: ARG001 (interface: no index files)
    return None
