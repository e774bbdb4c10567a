"""Open-i: the report XML parser on the real reports torchxrayvision ships, MeSH -> labels and
findings, and the synthetic layout through preprocess into a pretraining manifest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cmcgns.data.reports.openi import iter_reports, packaged_reports_archive, parse_report
from cmcgns.data.reports.sentences import split_sentences
from cmcgns.data.synth.layouts.openi import findings_from_mesh

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def archive():
    path = packaged_reports_archive()
    if path is None:
        pytest.skip("torchxrayvision (the real Open-i reports) is not installed")
    return path


def test_the_parser_reads_every_real_report(archive):
    reports = [parse_report(data, name) for name, data in iter_reports(archive)]
    assert len(reports) == 3955
    with_text = [r for r in reports if r.sections.get("FINDINGS") or r.sections.get("IMPRESSION")]
    assert len(with_text) > 3900
    assert sum(len(r.images) for r in reports) > 7400
    ten = next(r for r in reports if r.report_id == "10")
    assert ten.major == ("Calcified Granuloma/lung/upper lobe/right",) and ten.images == (
        "CXR10_IM-0002-1001",
        "CXR10_IM-0002-2001",
    )
    assert ten.sections["IMPRESSION"] == "No acute cardiopulmonary process."
    labels = ten.labels()
    assert labels["Granuloma"] == 1.0 and labels["No Finding"] == 0.0 and labels["Pleural Effusion"] == 0.0
    normal = next(r for r in reports if r.major == ("normal",))
    assert normal.labels()["No Finding"] == 1.0 and normal.labels()["Cardiomegaly"] == 0.0


def test_mesh_terms_become_findings_with_their_side_zone_and_severity():
    rng = np.random.default_rng(0)
    found = findings_from_mesh(
        ("Pleural Effusion/right/small", "Cardiomegaly/mild", "Opacity/lung/upper lobe/left"), rng
    )
    kinds = {f.kind: f for f in found}
    assert (kinds["effusion"].side, kinds["effusion"].zone, kinds["effusion"].severity) == ("right", "base", "mild")
    assert (kinds["cardiomegaly"].side, kinds["cardiomegaly"].severity) == ("midline", "mild")
    assert (kinds["consolidation"].side, kinds["consolidation"].zone) == ("left", "upper")
    assert findings_from_mesh(("normal", "Thoracic Vertebrae/degenerative"), rng) == []


def test_synthetic_images_with_real_reports_preprocess_into_pretraining_pairs(archive, tmp_path, tiny_pretrain_config):
    from cmcgns.data.bootstrap import ensure_synthetic, synthetic_kind
    from cmcgns.data.manifest import read_manifest
    from cmcgns.training.pretrain import pretrain

    prepared = ensure_synthetic("openi", tmp_path, 60, 0, 48, 32)
    assert synthetic_kind(prepared) == "synthetic images, real Open-i reports"
    manifest = read_manifest(prepared)
    drops = json.loads((prepared / "drop_report.json").read_text())["by_reason"]
    assert drops.get("non_frontal_view", 0) > 20  # the laterals, known from the DICOM view table
    assert manifest.meta["kind"] == "pretrain" and manifest.meta["views_from"].startswith("torchxrayvision")
    assert set(manifest.meta["splits"]) <= {"train", "val", "test"} and manifest.meta["splits"]["train"] > 20
    by_report = {
        name.rsplit("/", 1)[-1].removesuffix(".xml"): parse_report(data, name)
        for name, data in iter_reports(tmp_path / "raw-openi" / "ecgen-radiology")
    }
    row = manifest.rows[0]
    report = by_report[row["report_id"]]
    expected = split_sentences(report.sections.get("FINDINGS", "")) + split_sentences(
        report.sections.get("IMPRESSION", "")
    )
    assert [s["text"] for s in row["sentences"]] == expected  # the real text, as the splitter cuts it
    assert row["labels"] == report.labels() and row["id"] in report.images
    assert "eval_sets" in manifest.meta and "openi-5x200" in manifest.meta["eval_sets"]
    config = tiny_pretrain_config(
        **{
            "data.manifest": str(prepared),
            "head.name": "none",
            "stages": [{"name": "a", "steps": 2}],
            "train.checkpoint_every": 2,
        }
    )
    summary = pretrain(config, progress=False)
    assert summary["steps"] == 2 and summary["data"]["source"] == "manifest"
