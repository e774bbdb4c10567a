"""Optional tests on real offline material shipped by registry packages (skipped when absent).

torchxrayvision 1.5.7 (installed with --no-deps by the test command) ships the real Indiana /
Open-i reports and the real RSNA, SIIM and CheXpert label files; pydicom-data ships a real chest
CR DICOM. Everything is read from the installed packages at run time (CC BY-NC-ND material is
never copied into the repository); files are only unpacked into pytest's tmp_path.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmcgns.data.formats import siim_rle
from cmcgns.data.formats.dicom import read_dicom_gray8, write_dicom
from cmcgns.data.preprocess import chexpert, rsna, siim
from cmcgns.data.manifest import read_manifest
from cmcgns.data.preprocess.base import DropReport
from cmcgns.data.preprocess.verify import verify
from cmcgns.data.reports.sectioning import split_sections
from cmcgns.data.reports.sentences import normalise, split_sentences
from cmcgns.plugins.manager import get_registry

pytestmark = pytest.mark.real_data


def _package_dir(distribution: str, relative: str) -> Path:
    """Locate data inside an installed distribution without importing it (torchxrayvision is
    installed without its dependencies, so importing it would fail)."""
    try:
        path = Path(metadata.distribution(distribution).locate_file(relative))
    except metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed")
    if not path.exists():
        pytest.skip(f"{distribution} has no {relative}")
    return path


@pytest.fixture(scope="module")
def xrv_data() -> Path:
    return _package_dir("torchxrayvision", "torchxrayvision/data")


@pytest.fixture(scope="module")
def pydicom_data() -> Path:
    return _package_dir("pydicom-data", "data_store/data")


@pytest.fixture(scope="module")
def openi_reports(xrv_data) -> dict[str, dict[str, str]]:
    reports = {}
    with tarfile.open(xrv_data / "NLMCXR_reports.tgz") as archive:
        for member in archive.getmembers():
            if member.isfile() and member.name.endswith(".xml"):
                root = ET.parse(archive.extractfile(member)).getroot()
                reports[Path(member.name).stem] = {a.get("Label"): a.text or "" for a in root.iter("AbstractText")}
    return reports


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text)


# ---------------------------------------------------------------- Open-i reports (real text)


def test_open_i_reports_sectioning_recovers_findings_and_impression(openi_reports):
    assert len(openi_reports) > 3900
    with_findings = 0
    for report_id, parts in openi_reports.items():
        findings, impression = parts.get("FINDINGS", ""), parts.get("IMPRESSION", "")
        text = f"INDICATION: {parts.get('INDICATION', '')}\n\nFINDINGS: {findings}\n\nIMPRESSION: {impression}\n"
        sections = split_sections(text)
        assert normalise(sections.get("findings", "")) == normalise(findings), report_id
        assert normalise(sections.get("impression", "")) == normalise(impression), report_id
        with_findings += bool(findings.strip())
    assert with_findings > 3000


def test_open_i_sentence_splitting_keeps_every_word_and_number(openi_reports):
    counts = []
    for report_id, parts in openi_reports.items():
        for section in ("FINDINGS", "IMPRESSION"):
            text = parts.get(section, "")
            if not text.strip():
                continue
            sentences = split_sentences(text)
            counts.append(len(sentences))
            joined = " ".join(sentences)
            assert _words(joined) == _words(text), (report_id, section)  # nothing lost or reordered
            for decimal in re.findall(r"\d+\.\d+", text):  # "1.4 cm" is never cut at its point
                assert any(decimal in s for s in sentences), (report_id, decimal)
            for sentence in sentences:
                assert not re.match(r"\d{1,2}[.)]\s+[A-Za-z]", sentence), (report_id, sentence)  # list markers gone
                assert not re.search(r"[.!?]\s*\.$", sentence), (report_id, sentence)
    # Real reports: a handful of sentences per section, never one blob.
    assert 2.0 < float(np.mean(counts)) < 6.0 and max(counts) < 40
    first = split_sentences(openi_reports["1"]["FINDINGS"])
    assert first[0] == "The cardiac silhouette and mediastinum size are within normal limits."
    assert len(first) == 5


# ---------------------------------------------------------------- RSNA (real label file)


@pytest.fixture(scope="module")
def rsna_rows(xrv_data) -> list[dict[str, str]]:
    with zipfile.ZipFile(xrv_data / "kaggle_stage_2_train_labels.csv.zip") as archive:
        text = archive.read("stage_2_train_labels.csv").decode()
    return list(csv.DictReader(io.StringIO(text)))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_rsna_real_label_file_parses_to_known_counts(tmp_path, rsna_rows):
    _write_rows(tmp_path / "stage_2_train_labels.csv", rsna_rows)
    patients = rsna.read_labels(tmp_path / "stage_2_train_labels.csv")
    positives_rows = [r for r in rsna_rows if r["Target"] == "1"]
    assert len(patients) == len({r["patientId"] for r in rsna_rows}) == 26684
    assert sum(len(p["boxes"]) for p in patients.values()) == len(positives_rows) == 9555
    assert sum(p["target"] for p in patients.values()) == 6012
    assert all((p["target"] == 1) == bool(p["boxes"]) for p in patients.values())


def test_rsna_preprocess_with_real_labels_scales_real_boxes(tmp_path, rsna_rows):
    """Real labels + synthetic 1024x1024 DICOMs in the official layout -> COCO boxes equal the
    real boxes scaled to the cache size."""
    by_patient: dict[str, list[dict[str, str]]] = {}
    for row in rsna_rows:
        by_patient.setdefault(row["patientId"], []).append(row)
    multi = [p for p, rows in by_patient.items() if len(rows) >= 3][:2]
    single = [p for p, rows in by_patient.items() if rows[0]["Target"] == "1" and len(rows) == 1][:3]
    negative = [p for p, rows in by_patient.items() if rows[0]["Target"] == "0"][:3]
    chosen = multi + single + negative
    raw = tmp_path / "raw"
    (raw / "stage_2_train_images").mkdir(parents=True)
    _write_rows(raw / "stage_2_train_labels.csv", [r for p in chosen for r in by_patient[p]])
    pixels = np.full((1024, 1024), 90, dtype=np.uint8)
    for i, pid in enumerate(chosen):
        write_dicom(
            raw / "stage_2_train_images" / f"{pid}.dcm",
            pixels,
            patient_id=pid,
            study_uid=f"1.2.3.{i}.1",
            series_uid=f"1.2.3.{i}.2",
            sop_uid=f"1.2.3.{i}.3",
        )
    out = tmp_path / "out"
    get_registry().get("dataset", "rsna").build({}).run(raw, out, 64, 1)
    assert verify(out) == []
    rows = read_manifest(out).rows
    assert [r["id"] for r in rows] == sorted(chosen)
    for row in rows:
        expected = sorted(
            tuple(round(float(r[k]) * 64 / 1024, 3) for k in ("x", "y", "width", "height"))
            for r in by_patient[row["id"]]
            if r["Target"] == "1"
        )
        got = sorted(tuple(round(v, 3) for v in b["bbox"]) for b in row["boxes"])
        assert len(got) == len(expected), row["id"]
        assert np.allclose(np.array(got).reshape(-1), np.array(expected).reshape(-1), atol=0.01), row["id"]
        assert row["labels"]["Pneumonia"] == float(bool(expected))
        mask = np.asarray(Image.open(out / row["mask"]))
        assert mask.any() == bool(expected)


# ---------------------------------------------------------------- SIIM (real run-length file)


@pytest.fixture(scope="module")
def siim_csv(xrv_data, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("siim") / "train-rle.csv"
    path.write_bytes(gzip.decompress((xrv_data / "siim-pneumothorax-train-rle.csv.gz").read_bytes()))
    return path


def test_siim_real_rle_file_reads_and_round_trips(siim_csv):
    header = siim_csv.read_text().splitlines()[0]
    assert header == "ImageId, EncodedPixels"  # the official header's leading space is handled
    rles = siim.read_rles(siim_csv)
    raw_rows = siim_csv.read_text().splitlines()[1:]
    assert sum(len(v) for v in rles.values()) == len(raw_rows)
    positives = sorted(k for k, v in rles.items() if v != ["-1"])
    assert len(positives) > 2000 and any(len(rles[k]) > 1 for k in positives)
    sample = positives[:: max(1, len(positives) // 150)]
    for image_id in sample:
        runs = rles[image_id]
        mask = siim.decode_merged(runs, 1024, 1024)
        assert 0 < mask.sum() < mask.size, image_id
        if len(runs) == 1:  # our encoder writes exactly the competition's string
            assert siim_rle.encode(mask) == runs[0], image_id
        else:  # several lesions: the merged mask covers every one of them
            for rle in runs:
                single = siim_rle.decode(rle, 1024, 1024)
                assert (mask >= single).all()


def test_siim_preprocess_with_real_rles(tmp_path, siim_csv):
    rles = siim.read_rles(siim_csv)
    ids = [k for k, v in rles.items() if v != ["-1"]][:3] + [k for k, v in rles.items() if v == ["-1"]][:2]
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = siim_csv.read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if line.split(",", 1)[0] in ids]
    (raw / "train-rle.csv").write_text("\n".join(keep) + "\n")
    for i, image_id in enumerate(ids):
        write_dicom(
            raw / "dicom-images-train" / f"1.2.{i}" / f"1.3.{i}" / f"{image_id}.dcm",
            np.full((1024, 1024), 80, dtype=np.uint8),
            patient_id=f"p{i}",
            study_uid=f"1.2.{i}",
            series_uid=f"1.3.{i}",
            sop_uid=image_id,
        )
    out = tmp_path / "out"
    get_registry().get("dataset", "siim").build({}).run(raw, out, 128, 1)
    assert verify(out) == []
    rows = read_manifest(out).rows
    assert len(rows) == len(ids)
    for row in rows:
        positive = rles[row["id"]] != ["-1"]
        assert row["labels"]["Pneumothorax"] == float(positive)
        full = siim.decode_merged(rles[row["id"]], 1024, 1024)
        small = np.asarray(Image.open(out / row["mask"]))
        # The 128 px mask covers the same region: its area tracks the full-resolution area.
        assert small.sum() == pytest.approx(full.sum() / 64, rel=0.35, abs=2)


# ---------------------------------------------------------------- CheXpert (real index file)


def test_chexpert_real_index(tmp_path, xrv_data):
    base = tmp_path / "CheXpert-v1.0-small"
    base.mkdir()
    (base / "train.csv").write_bytes(gzip.decompress((xrv_data / "chexpert_train.csv.gz").read_bytes()))
    with (base / "train.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    frontal = [r for r in table if r["Frontal/Lateral"] == "Frontal"]
    drops = DropReport()
    ones, considered = chexpert.read_index(base / "train.csv", "train", "ones", drops)
    zeros, _ = chexpert.read_index(base / "train.csv", "train", "zeros", DropReport())
    assert considered == len(table) and len(ones) == len(frontal)  # ids never collide
    assert drops.to_dict(considered, len(ones))["by_reason"] == {"non_frontal_view": len(table) - len(frontal)}
    assert all(re.fullmatch(r"patient\d{5}", c["patient"]) for c in ones.values())
    for label in chexpert.COMPETITION_LABELS:
        uncertain = sum(r[label] == "-1.0" for r in frontal)
        positive = sum(r[label] == "1.0" for r in frontal)
        assert sum(c["labels"][label] for c in ones.values()) == positive + uncertain
        assert sum(c["labels"][label] for c in zeros.values()) == positive
    # Patients never straddle train and val (the hold-out takes whole patients, up to 10 % of the images).
    held = chexpert.hold_out_patients(ones, min(chexpert.VAL_IMAGES, len(ones) // 10))
    assert 0 < held["images"] <= len(ones) // 10 + 10
    split_of: dict[str, set] = {}
    for c in ones.values():
        split_of.setdefault(c["patient"], set()).add(c["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert {"train", "val"} == {s for v in split_of.values() for s in v}


# ---------------------------------------------------------------- pydicom-data (real chest CR)


def test_real_chest_cr_dicom_reads_inverted_and_decoded(pydicom_data):
    image = read_dicom_gray8(pydicom_data / "RG1_UNCR.dcm")  # CR chest PA, MONOCHROME1, 15 bit
    assert image.shape == (1955, 1841) and image.dtype == np.uint8
    h, w = image.shape
    band = slice(int(0.3 * h), int(0.6 * h))
    lungs = (image[band, int(0.2 * w) : int(0.35 * w)].mean() + image[band, int(0.65 * w) : int(0.8 * w)].mean()) / 2
    mediastinum = image[band, int(0.45 * w) : int(0.55 * w)].mean()
    assert mediastinum > lungs + 40  # MONOCHROME1 was inverted: air dark, mediastinum bright
    # The lossless JPEG 2000 copy of the same radiograph decodes to the same pixels.
    assert np.array_equal(read_dicom_gray8(pydicom_data / "RG1_J2KR.dcm"), image)


def test_real_chest_dicom_through_rsna_preprocess(tmp_path, pydicom_data):
    raw = tmp_path / "raw"
    (raw / "stage_2_train_images").mkdir(parents=True)
    (raw / "stage_2_train_images" / "real-cr.dcm").write_bytes((pydicom_data / "RG1_UNCR.dcm").read_bytes())
    (raw / "stage_2_train_images" / "not-a-dicom.dcm").write_bytes(b"garbage")
    (raw / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\nreal-cr,184.1,391.0,368.2,782.0,1\nnot-a-dicom,,,,,0\n"
    )
    out = tmp_path / "out"
    get_registry().get("dataset", "rsna").build({}).run(raw, out, 100, 1)
    rows = read_manifest(out).rows
    drop = json.loads((out / "drop_report.json").read_text())
    assert [r["id"] for r in rows] == ["real-cr"] and drop["by_reason"] == {"unreadable_image": 1}
    x, y, bw, bh = rows[0]["boxes"][0]["bbox"]  # non-square 1955x1841 -> per-axis scaling
    assert (x, y, bw, bh) == pytest.approx((10.0, 20.0, 20.0, 40.0), abs=0.01)
