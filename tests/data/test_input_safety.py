"""The reliability probes on preprocessing inputs (../shared/spec/reliability-probes.md rows 8-39):
each bad input is dropped with a reason or refused with one line; nothing outside the source is
read, nothing outside --out is written, an interrupted run never leaves a mixed cache."""

import gzip
import json

import numpy as np
import pytest
from PIL import Image

from cmcgns.data.manifest import read_manifest
from cmcgns.data.preprocess.base import high_bit_depth_to_gray8, load_gray, safe_name
from cmcgns.data.synth.generate import generate
from cmcgns.errors import DataError
from cmcgns.plugins.manager import get_registry


def _run(dataset, raw, out, size=32):
    return get_registry().get("dataset", dataset).build({}).run(raw, out, size, 1)


def _drops(out):
    return json.loads((out / "drop_report.json").read_text())


@pytest.fixture
def covidx(tmp_path):
    raw = tmp_path / "raw"
    generate("covidx", raw, 24, seed=0, image_size=48)
    return raw


def _append_line(path, line):
    path.write_text(path.read_text() + line + "\n")


def test_index_paths_leading_outside_the_source_are_dropped_and_never_read(covidx, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    Image.fromarray(np.full((40, 40), 200, np.uint8)).save(secret / "leak.png")
    (covidx / "train" / "link.png").symlink_to(secret / "leak.png")
    (secret / "leak2.png").write_bytes((secret / "leak.png").read_bytes())
    _append_line(covidx / "train.txt", "p1 ../../secret/leak.png COVID-19 x")
    _append_line(covidx / "train.txt", f"p2 {secret / 'leak2.png'} COVID-19 x")
    _append_line(covidx / "train.txt", "p3 link.png COVID-19 x")
    out = tmp_path / "out"
    _run("covidx", covidx, out)
    drop = _drops(out)
    assert drop["by_reason"]["outside_source"] == 3
    assert not any("leak" in r["id"] or "link" in r["id"] for r in read_manifest(out).rows)


def test_ids_cannot_write_outside_out(tmp_path):
    raw = tmp_path / "raw"
    generate("rsna", raw, 12, seed=0, image_size=48)
    labels = raw / "stage_2_train_labels.csv"
    first = labels.read_text().splitlines()[1].split(",")[0]
    evil = "../../evil"
    (raw / "stage_2_train_images" / f"{first}.dcm").rename(raw / "stage_2_train_images" / "x.dcm")
    labels.write_text(labels.read_text().replace(first, evil))
    (raw / "stage_2_train_images" / "x.dcm").rename(raw / "stage_2_train_images" / "evil.dcm")
    out = tmp_path / "deep" / "out"
    _run("rsna", raw, out)
    assert not list(tmp_path.glob("evil*")) and not list((tmp_path / "deep").glob("evil*"))
    for row in read_manifest(out).rows:
        assert (out / row["image"]).resolve().is_relative_to(out.resolve())
    name = safe_name("../../evil")
    assert "/" not in name and not name.startswith(".") and safe_name("a/b") != safe_name("a_b")


def test_a_16_bit_png_is_scaled_by_its_bit_depth_not_saturated(tmp_path):
    ramp = np.linspace(3, 65512, 64 * 64).reshape(64, 64).astype(np.uint16)
    path = tmp_path / "x.png"
    Image.fromarray(ramp).save(path)
    gray = load_gray(path)
    assert gray.dtype == np.uint8 and gray.min() == 0 and gray.max() == 255 and len(np.unique(gray)) > 200
    twelve = (ramp // 16).astype(np.uint16)  # a 12-bit detector in a 16-bit container
    assert high_bit_depth_to_gray8(twelve).max() == 255


@pytest.mark.parametrize("annotation, reason", [("0 nan 1 inf 3", "invalid_box"), ("0 30 30 20 20", None)])
def test_non_finite_boxes_are_dropped_with_a_reason_not_stretched(tmp_path, annotation, reason):
    raw = tmp_path / "raw"
    generate("object-cxr", raw, 10, seed=0, image_size=64)
    csv = raw / "train.csv"
    lines = csv.read_text().splitlines()
    name = lines[1].split(",")[0]
    lines[1] = f"{name},{annotation}"
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    _run("object-cxr", raw, out, size=64)
    drop = _drops(out)
    row = next((r for r in read_manifest(out).rows if r["id"] == f"train_{name.split('.')[0]}"), None)
    if reason:
        assert drop["by_reason"][reason] >= 1 and row is None  # its only box was unusable
    else:
        assert row is not None and row["boxes"][0]["bbox"] == [20.0, 20.0, 10.0, 10.0]  # min/max corners


def test_rsna_nan_width_is_not_a_box(tmp_path):
    raw = tmp_path / "raw"
    generate("rsna", raw, 16, seed=3, image_size=48)
    labels = raw / "stage_2_train_labels.csv"
    lines = labels.read_text().splitlines()
    header = lines[0].split(",")
    i = next(k for k, line in enumerate(lines[1:], 1) if line.split(",")[header.index("Target")] == "1")
    cells = lines[i].split(",")
    cells[header.index("width")] = "nan"
    lines[i] = ",".join(cells)
    labels.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    _run("rsna", raw, out)
    assert _drops(out)["by_reason"]["invalid_box"] == 1
    for row in read_manifest(out).rows:
        assert all(all(np.isfinite(v) for v in b["bbox"]) for b in row["boxes"])


def test_mimic_reports_unknown_splits_bad_bytes_and_directories_are_counted(tmp_path):
    raw = tmp_path / "raw"
    generate("mimic-cxr", raw, 30, seed=0, image_size=48)
    _run("mimic-cxr", raw, tmp_path / "first")
    kept = read_manifest(tmp_path / "first").rows
    reports = [next((raw / "files").rglob(f"s{r['study_id']}.txt")) for r in kept[:3]]
    reports[0].write_bytes(b"FINDINGS: cardio\xff\xfemegaly is seen.\x00\x00 The lungs are clear.\n")
    reports[1].unlink()
    reports[1].mkdir()
    reports[2].write_text("FINDINGS: " + "The heart is normal. " * 60000)
    split = raw / "mimic-cxr-2.0.0-split.csv.gz"
    rows = gzip.decompress(split.read_bytes()).decode().splitlines()
    i = next(k for k, line in enumerate(rows) if line.startswith(kept[5]["id"] + ","))
    rows[i] = ",".join(rows[i].split(",")[:-1] + ["bogus"])
    split.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    out = tmp_path / "out"
    _run("mimic-cxr", raw, out)
    drop = _drops(out)
    assert drop["by_reason"]["unknown_split"] == 1
    assert drop["by_reason"]["unreadable_report"] == 1
    assert drop["by_reason"]["oversized_report"] == 1
    assert drop["repaired"] == {"report_not_utf8_read_as_latin1": 1, "control_characters_removed": 1}
    texts = " ".join(s["text"] for r in read_manifest(out).rows for s in r["sentences"])
    assert "\x00" not in texts and "\ufffd" not in texts


def test_duplicated_ids_are_counted_not_silently_overwritten(covidx, tmp_path):
    first = (covidx / "train.txt").read_text().splitlines()[0].split()
    flipped = "normal" if first[2] != "normal" else "pneumonia"
    _append_line(covidx / "train.txt", f"{first[0]} {first[1]} {flipped} x")
    out = tmp_path / "out"
    _run("covidx", covidx, out)
    assert _drops(out)["by_reason"]["duplicate_id"] == 1


def test_a_ragged_csv_row_is_refused_naming_the_line(tmp_path):
    raw = tmp_path / "raw"
    generate("object-cxr", raw, 8, seed=0, image_size=48)
    csv = raw / "train.csv"
    lines = csv.read_text().splitlines()
    lines[2] = "onlyonecell"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"train.csv:3: 1 cell\(s\), the header has 2"):
        _run("object-cxr", raw, tmp_path / "out")


def test_an_index_that_keeps_nothing_is_an_error_not_an_empty_dataset(covidx, tmp_path):
    for split in ("train", "val", "test"):
        if (covidx / f"{split}.txt").exists():
            (covidx / f"{split}.txt").write_text("")
    with pytest.raises(DataError, match="no rows kept of 0 considered"):
        _run("covidx", covidx, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size", [0, -5])
def test_a_nonsense_image_size_is_one_line(covidx, tmp_path, size):
    with pytest.raises(DataError, match=f"--image-size {size}: must be at least 16"):
        _run("covidx", covidx, tmp_path / "out", size=size)
    assert not (tmp_path / "out").exists()


def test_out_that_is_a_file_or_a_foreign_folder_is_refused_untouched(covidx, tmp_path):
    target = tmp_path / "file"
    target.write_text("keep")
    with pytest.raises(DataError, match="exists and is not a folder"):
        _run("covidx", covidx, target)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(DataError, match="not empty and not a prepared dataset"):
        _run("covidx", covidx, foreign)
    assert target.read_text() == "keep" and (foreign / "notes.txt").read_text() == "keep"


def test_a_rerun_replaces_the_previous_result_whole_and_an_interrupted_one_changes_nothing(
    covidx, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    _run("covidx", covidx, out, size=32)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    import cmcgns.data.preprocess.covidx as module

    def killed(*args, **kwargs):
        staging = args[1]
        (staging / "images").mkdir(parents=True)
        (staging / "images" / "half.png").write_bytes(b"")
        raise KeyboardInterrupt  # as kill -9 would, mid-way

    monkeypatch.setattr(module, "preprocess", killed)
    with pytest.raises(KeyboardInterrupt):
        _run("covidx", covidx, out, size=48)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert read_manifest(out).meta["image_size"] == 32
    monkeypatch.undo()
    (covidx / "test.txt").write_text("\n".join((covidx / "test.txt").read_text().splitlines()[:2]) + "\n")
    _run("covidx", covidx, out, size=48)  # fewer images at another size: no orphans, one size
    rows = read_manifest(out).rows
    assert {Image.open(out / r["image"]).size for r in rows} == {(48, 48)}
    assert len(list((out / "images").rglob("*.png"))) == len(rows)
    assert not list(tmp_path.glob(".out.*"))


def test_verify_flags_a_manifest_row_pointing_outside_the_folder(covidx, tmp_path):
    from cmcgns.data.preprocess.verify import verify

    out = tmp_path / "out"
    _run("covidx", covidx, out)
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    row = json.loads(lines[0])
    row["image"] = "../../etc/passwd"
    lines[0] = json.dumps(row)
    manifest.write_text("\n".join(lines) + "\n")
    assert any("lies outside" in problem for problem in verify(out))


def test_a_symlinked_siim_study_folder_leading_outside_is_dropped_as_outside_source(tmp_path):
    raw = tmp_path / "raw"
    generate("siim", raw, 10, seed=0, image_size=48)
    study = next(p for p in (raw / "dicom-images-train").iterdir() if p.is_dir())
    moved = tmp_path / "elsewhere" / study.name
    moved.parent.mkdir()
    study.rename(moved)
    study.symlink_to(moved, target_is_directory=True)
    out = tmp_path / "out"
    _run("siim", raw, out)
    reasons = _drops(out)["by_reason"]
    assert reasons.get("outside_source", 0) >= 1 and "missing_image" not in reasons


def test_a_pickle_that_is_not_plain_tensors_is_refused_in_one_line(tmp_path):
    import os

    from cmcgns.models.image_encoder import ImageEncoder

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'MARKER'}",))

    evil = tmp_path / "evil.pth"
    import torch

    torch.save({"model": Payload()}, evil)
    from cmcgns.errors import ConfigError

    with pytest.raises(ConfigError, match="evil.pth: not a plain weights file"):
        ImageEncoder("resnet18", 64, evil)
    assert not (tmp_path / "MARKER").exists()


def test_rsna_duplicate_boxes_and_mimic_conflicting_splits_are_counted(tmp_path):
    raw = tmp_path / "rsna"
    generate("rsna", raw, 16, seed=3, image_size=48)
    labels = raw / "stage_2_train_labels.csv"
    lines = labels.read_text().splitlines()
    header = lines[0].split(",")
    positive = next(line for line in lines[1:] if line.split(",")[header.index("Target")] == "1")
    labels.write_text("\n".join(lines + [positive]) + "\n")
    _run("rsna", raw, tmp_path / "rsna-out")
    assert _drops(tmp_path / "rsna-out")["by_reason"]["duplicate_box"] == 1

    mimic = tmp_path / "mimic"
    generate("mimic-cxr", mimic, 20, seed=0, image_size=48)
    _run("mimic-cxr", mimic, tmp_path / "mimic-first")
    kept = read_manifest(tmp_path / "mimic-first").rows[0]
    split = mimic / "mimic-cxr-2.0.0-split.csv.gz"
    rows = gzip.decompress(split.read_bytes()).decode().splitlines()
    cells = next(line for line in rows if line.startswith(kept["id"] + ",")).split(",")
    rows.append(",".join(cells[:-1] + ["test" if cells[-1] != "test" else "train"]))
    split.write_bytes(gzip.compress(("\n".join(rows) + "\n").encode()))
    _run("mimic-cxr", mimic, tmp_path / "mimic-out")
    assert _drops(tmp_path / "mimic-out")["by_reason"]["conflicting_split"] == 1
    assert kept["id"] not in {r["id"] for r in read_manifest(tmp_path / "mimic-out").rows}


def test_covidx_three_class_and_binary_releases_and_a_mixed_list(covidx, tmp_path):
    out = tmp_path / "three"
    _run("covidx", covidx, out)
    manifest = read_manifest(out)
    assert (
        manifest.meta["labels"] == ["normal", "pneumonia", "COVID-19"] and manifest.meta["label_type"] == "multiclass"
    )
    assert all(sorted(r["labels"].values()) == [0.0, 0.0, 1.0] for r in manifest.rows)
    for split in ("train", "val", "test"):
        index = covidx / f"{split}.txt"
        if index.exists():
            text = index.read_text()
            text = (
                text.replace(" normal ", " negative ")
                .replace(" pneumonia ", " negative ")
                .replace(" COVID-19 ", " positive ")
            )
            index.write_text(text)
    _run("covidx", covidx, tmp_path / "binary")
    binary = read_manifest(tmp_path / "binary")
    assert binary.meta["labels"] == ["COVID-19"] and binary.meta["label_type"] == "binary"
    _append_line(covidx / "train.txt", "p9 extra.png pneumonia x")
    with pytest.raises(DataError, match="mixes the binary .* and the 3-class"):
        _run("covidx", covidx, tmp_path / "mixed")
