"""Open-i (Indiana University chest X-ray collection) report XML: the `ecgen-radiology/<n>.xml`
files NLM distributes (NLMCXR_reports.tgz). Each holds FINDINGS/IMPRESSION text, MeSH terms
(major: `Term/site/side/severity...`, automatic: free terms) and its images (`parentImage` ids,
the names of the NLMCXR_png files).

Labels: CheXpert-style names from the MeSH major and automatic terms by lower-case substring, the
way torchxrayvision's Openi_Dataset labels its pathologies (plus Consolidation, Pneumonia and
Support Devices, which CheXpert-style tasks name); a report indexed `normal` is No Finding; a report
with no MeSH indexing gets no labels (null = not mentioned).
"""

from __future__ import annotations

import dataclasses
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from cmcgns.errors import DataError

# label -> substrings of the lower-cased MeSH terms (torchxrayvision's mapping, CheXpert names)
LABEL_TERMS: dict[str, tuple[str, ...]] = {
    "Atelectasis": ("atelectas",),
    "Cardiomegaly": ("cardiomegaly",),
    "Consolidation": ("consolidation",),
    "Edema": ("edema", "pulmonary congestion"),
    "Pleural Effusion": ("effusion",),
    "Pneumonia": ("pneumonia",),
    "Pneumothorax": ("pneumothorax",),
    "Lung Opacity": ("opacity", "airspace disease", "infiltrat", "density", "consolidation"),
    "Lung Lesion": ("nodule", "mass", "lesion"),
    "Fracture": ("fracture",),
    "Support Devices": ("catheter", "medical device", "surgical instruments", "tube", "pacemaker"),
    "Emphysema": ("emphysema",),
    "Granuloma": ("granulom",),
    "Hernia": ("hernia",),
}
LABELS = ["No Finding", *LABEL_TERMS]


@dataclasses.dataclass(frozen=True)
class OpeniReport:
    report_id: str  # the XML's number (file stem), also the patient: one report per patient
    sections: dict[str, str]  # AbstractText label (upper case) -> text
    major: tuple[str, ...]  # MeSH major terms as written, e.g. "Pleural Effusion/right/small"
    automatic: tuple[str, ...]
    images: tuple[str, ...]  # parentImage ids

    def labels(self) -> dict[str, float | None]:
        terms = [t.lower() for t in self.major + self.automatic]
        if not terms or terms == ["no indexing"]:
            return dict.fromkeys(LABELS)
        out: dict[str, float | None] = {"No Finding": float(any(t.split("/")[0] == "normal" for t in self.major))}
        for label, needles in LABEL_TERMS.items():
            out[label] = float(any(n in t for t in terms for n in needles))
        return out


def parse_report(data: bytes, name: str) -> OpeniReport:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DataError(f"{name}: not valid XML ({exc})") from None
    sections = {
        (a.get("Label") or "").upper(): (a.text or "").strip() for a in root.iter("AbstractText") if a.get("Label")
    }
    return OpeniReport(
        Path(name).stem,
        sections,
        tuple((n.text or "").strip() for n in root.findall(".//MeSH/major") if n.text),
        tuple((n.text or "").strip() for n in root.findall(".//MeSH/automatic") if n.text),
        tuple(n.get("id", "") for n in root.findall(".//parentImage") if n.get("id")),
    )


def iter_reports(source: Path) -> Iterator[tuple[str, bytes]]:
    """(name, xml bytes) from a folder of XML files or the NLMCXR_reports.tgz archive."""
    source = Path(source)
    if source.is_dir():
        for path in sorted(source.glob("*.xml"), key=lambda p: (len(p.stem), p.stem)):
            yield str(path), path.read_bytes()
        return
    try:
        with tarfile.open(source) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".xml")]
            for member in sorted(members, key=lambda m: (len(Path(m.name).stem), Path(m.name).stem)):
                handle = archive.extractfile(member)
                if handle is not None:
                    yield f"{source}:{member.name}", handle.read()
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{source}: cannot read the report archive ({exc})") from None


def packaged_reports_archive() -> Path | None:
    """torchxrayvision's copy of NLMCXR_reports.tgz (the real 3,955 reports, CC BY-NC-ND 4.0), read in
    place from the installed package (torchxrayvision is installed without its dependencies, so it
    is located, never imported); None when absent."""
    return _packaged("NLMCXR_reports.tgz")


def packaged_view_table() -> Path | None:
    """torchxrayvision's nlmcxr_dicom_metadata.csv.gz: the DICOM View Position of every Open-i image."""
    return _packaged("nlmcxr_dicom_metadata.csv.gz")


def _packaged(name: str) -> Path | None:
    from importlib import metadata

    try:
        path = Path(str(metadata.distribution("torchxrayvision").locate_file(f"torchxrayvision/data/{name}")))
    except metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def read_views(path: Path) -> dict[str, str]:
    """imageid -> View Position (PA, AP, LL, LATERAL, ...) from a DICOM metadata csv (.gz allowed)."""
    import csv
    import gzip
    import io

    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(text)
            if not reader.fieldnames or "imageid" not in reader.fieldnames or "View Position" not in reader.fieldnames:
                raise DataError(f"{path}: needs imageid and View Position columns")
            return {row["imageid"]: (row["View Position"] or "").strip().upper() for row in reader}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read the view table ({type(exc).__name__}: {exc})") from None
