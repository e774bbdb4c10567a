import json

import numpy as np
import pytest
from PIL import Image

from cmcgns.data.manifest import read_manifest
from cmcgns.data.preprocess.verify import verify
from cmcgns.data.synth.generate import generate
from cmcgns.errors import DataError
from cmcgns.plugins.manager import get_registry

DATASETS = ["mimic-cxr", "chexpert", "rsna", "siim", "covidx", "object-cxr"]


@pytest.mark.parametrize("dataset", DATASETS)
def test_preprocess_every_layout_with_damaged_files(tmp_path, dataset):
    raw, out = tmp_path / "raw", tmp_path / "out"
    generate(dataset, raw, 30, seed=1, image_size=64, corrupt_fraction=0.2)
    result = get_registry().get("dataset", dataset).build({}).run(raw, out, 32, 1)
    drop = json.loads((out / "drop_report.json").read_text())
    assert result.rows > 15 and drop["kept"] == result.rows
    damaged = {k: v for k, v in drop["by_reason"].items() if k not in ("non_frontal_view", "extra_frontal_image")}
    assert sum(damaged.values()) >= 1, drop  # damaged studies are counted with a reason, not a crash
    resized_away = {"box_too_small_after_resize", "no_valid_box"}  # tiny synthetic boxes at 32 px, counted
    assert set(damaged) - resized_away <= {"missing_image", "unreadable_image", "empty_report", "missing_report"}
    assert verify(out) == []
    manifest = read_manifest(out)
    meta, rows = manifest.meta, manifest.rows
    assert meta["schema_version"] == 1 and all(r["schema_version"] == 1 for r in rows)
    assert Image.open(out / rows[0]["image"]).size == (32, 32)


def test_mimic_keeps_official_splits_and_sentences(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    generate("mimic-cxr", raw, 80, seed=2, image_size=48)
    get_registry().get("dataset", "mimic-cxr").build({}).run(raw, out, 32, 2)
    rows = read_manifest(out).rows
    splits = {r["split"] for r in rows}
    assert {"train", "val", "test"} <= splits  # MIMIC's official validate becomes val; val and test are not merged
    row = rows[0]
    assert [s["index"] for s in row["sentences"]] == list(range(len(row["sentences"])))
    assert {s["section"] for s in row["sentences"]} <= {"findings", "impression"}


def test_siim_masks_match_rle(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    generate("siim", raw, 12, seed=0, image_size=64)
    get_registry().get("dataset", "siim").build({}).run(raw, out, 64, 1)
    rows = read_manifest(out).rows
    positives = [r for r in rows if r["labels"]["Pneumothorax"] == 1.0]
    assert positives
    mask = np.asarray(Image.open(out / positives[0]["mask"]))
    assert set(np.unique(mask)) == {0, 1}


def test_detection_coco_files(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    generate("object-cxr", raw, 20, seed=0, image_size=64)
    get_registry().get("dataset", "object-cxr").build({}).run(raw, out, 32, 1)
    coco = json.loads((out / "coco_train.json").read_text())
    assert coco["annotations"] and all(0 <= a["bbox"][0] < 32 and a["bbox"][2] > 0 for a in coco["annotations"])


def test_missing_index_file_is_a_clear_error(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(DataError, match="stage_2_train_labels.csv"):
        get_registry().get("dataset", "rsna").build({}).run(tmp_path / "raw", tmp_path / "out", 32, 1)


def test_verify_reports_missing_image(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    generate("covidx", raw, 8, seed=0, image_size=48)
    get_registry().get("dataset", "covidx").build({}).run(raw, out, 32, 1)
    rows = read_manifest(out).rows
    (out / rows[0]["image"]).unlink()
    assert any("missing" in p for p in verify(out))


def test_real_dicom_from_pydicom_test_data():
    """Real offline material: a DICOM shipped inside pydicom itself goes through our reader."""
    from pydicom.data import get_testdata_file

    from cmcgns.data.formats.dicom import read_dicom_gray8

    path = get_testdata_file("CT_small.dcm")
    if path is None:
        pytest.skip("pydicom test data not available")
    pixels = read_dicom_gray8(path)
    assert pixels.dtype == np.uint8 and pixels.shape == (128, 128) and pixels.std() > 10


def test_chexpert_uncertain_labels_follow_the_mgca_per_label_mapping(tmp_path):
    from cmcgns.data.preprocess.base import DropReport
    from cmcgns.data.preprocess.chexpert import COMPETITION_LABELS, read_index

    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    header = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(COMPETITION_LABELS)
    # every label uncertain in one image; blank / 1 / 0 in the other
    rows = [
        "CheXpert-v1.0-small/train/patient1/study1/view1_frontal.jpg,F,50,Frontal,AP," + ",".join(["-1.0"] * 5),
        "CheXpert-v1.0-small/train/patient2/study1/view1_frontal.jpg,M,60,Frontal,PA,,1.0,0.0,,1.0",
    ]
    (root / "train.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    found, _ = read_index(root / "train.csv", "train", "mgca", DropReport())
    uncertain, plain = (found[k]["labels"] for k in sorted(found))
    assert uncertain == {
        "Atelectasis": 1.0,
        "Cardiomegaly": 0.0,
        "Consolidation": 0.0,
        "Edema": 1.0,
        "Pleural Effusion": 1.0,
    }
    assert plain == {
        "Atelectasis": 0.0,
        "Cardiomegaly": 1.0,
        "Consolidation": 0.0,
        "Edema": 0.0,
        "Pleural Effusion": 1.0,
    }
    ones, _ = read_index(root / "train.csv", "train", "ones", DropReport())
    assert set(ones[sorted(ones)[0]]["labels"].values()) == {1.0}
