"""Inputs from outside (issue 20, section 6): byte-order marks, float TIFFs, EXIF orientation,
absurd shapes, non-Latin reports and over-long CSV fields are read correctly or dropped with a
counted reason, never silently wrong and never a traceback."""

import json

import numpy as np
import pytest
from PIL import Image

from cmcgns.data.manifest import read_manifest
from cmcgns.data.preprocess.base import _resize_one, load_gray
from cmcgns.data.synth.generate import generate
from cmcgns.errors import DataError
from cmcgns.plugins.manager import get_registry


def _run(dataset, raw, out, size=32):
    return get_registry().get("dataset", dataset).build({}).run(raw, out, size, 1)


def test_a_float_tiff_is_scaled_by_its_range_not_cached_black(tmp_path):
    ramp = np.linspace(-0.25, 0.75, 64 * 64, dtype=np.float32).reshape(64, 64)
    path = tmp_path / "x.tif"
    Image.fromarray(ramp, mode="F").save(path)
    gray = load_gray(path)
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255 and len(np.unique(gray)) > 200
    assert np.asarray(Image.open(path).convert("L")).max() <= 1  # what a plain convert would have kept


def test_exif_orientation_is_respected(tmp_path):
    pixels = np.zeros((40, 80), np.uint8)
    pixels[:, :10] = 255  # a bright band on the left of the stored image
    path = tmp_path / "x.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    gray = load_gray(path)
    assert gray.shape == (80, 40)  # upright as a viewer shows it
    assert gray[:10].mean() > 200 and gray[-10:].mean() < 50  # the band is now at the top


@pytest.mark.parametrize(
    ("shape", "reason"),
    [((10, 10000), "extreme_aspect_ratio"), ((1, 1), "image_too_small"), ((20, 30), "image_too_small")],
)
def test_absurd_or_tiny_images_are_dropped_with_a_reason(tmp_path, shape, reason):
    path = tmp_path / "x.png"
    Image.fromarray(np.full(shape, 128, np.uint8)).save(path)
    _, hw, error = _resize_one(32, (str(path), str(tmp_path / "out.png")))
    assert hw is None and error.startswith(f"{reason}: {shape[1]}x{shape[0]} pixels")
    assert not (tmp_path / "out.png").exists()


def test_an_absurd_image_in_a_dataset_is_counted_in_the_drop_report(tmp_path):
    raw = tmp_path / "raw"
    generate("covidx", raw, 24, seed=0, image_size=48)
    first = (raw / "train.txt").read_text().splitlines()[0].split()
    image = next(raw.rglob(first[1]))
    Image.fromarray(np.full((10, 400), 128, np.uint8)).save(image)
    out = tmp_path / "out"
    _run("covidx", raw, out)
    assert json.loads((out / "drop_report.json").read_text())["by_reason"]["extreme_aspect_ratio"] == 1


def _a_prepared_mimic_study(tmp_path):
    """A synthetic MIMIC-CXR download, its first prepared row, and that row's report file."""
    raw = tmp_path / "raw"
    generate("mimic-cxr", raw, 12, seed=0, image_size=48)
    _run("mimic-cxr", raw, tmp_path / "plain")
    study = read_manifest(tmp_path / "plain").rows[0]
    return raw, study, next((raw / "files").rglob(f"s{study['study_id']}.txt"))


def test_a_report_with_a_bom_keeps_its_findings_and_a_csv_with_a_bom_its_first_column(tmp_path):
    raw, study, report = _a_prepared_mimic_study(tmp_path)
    report.write_bytes(b"\xef\xbb\xbf" + report.read_bytes())
    generate("object-cxr", tmp_path / "objects", 8, seed=0, image_size=48)
    index = tmp_path / "objects" / "train.csv"
    index.write_bytes(b"\xef\xbb\xbf" + index.read_bytes())
    _run("mimic-cxr", raw, tmp_path / "bom")
    after = {r["id"]: r for r in read_manifest(tmp_path / "bom").rows}[study["id"]]
    assert [s["text"] for s in after["sentences"]] == [s["text"] for s in study["sentences"]]
    assert _run("object-cxr", tmp_path / "objects", tmp_path / "objects-out").rows > 0


def test_a_report_in_another_script_is_counted_under_a_reason_that_says_so(tmp_path):
    raw, study, report = _a_prepared_mimic_study(tmp_path)
    report.write_text("FINDINGS: אין תפליט פלאורלי. הלב בגודל תקין.\nIMPRESSION: צילום חזה תקין.\n", encoding="utf-8")
    _run("mimic-cxr", raw, tmp_path / "out")
    drops = json.loads((tmp_path / "out" / "drop_report.json").read_text())["by_reason"]
    assert drops.get("non_latin_script") == 1 and "too_few_sentences" not in drops


def test_a_csv_field_past_the_size_limit_is_one_line_naming_the_line(tmp_path):
    raw = tmp_path / "raw"
    generate("object-cxr", raw, 8, seed=0, image_size=48)
    index = raw / "train.csv"
    lines = index.read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + ',"' + "x" * 140_000  # a quote never closed
    index.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train.csv:\d+: not a valid csv row .*unclosed quote") as caught:
        _run("object-cxr", raw, tmp_path / "out")
    assert "\n" not in str(caught.value)
