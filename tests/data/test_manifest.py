import json

import pytest

from cmcgns.data import manifest as mf
from cmcgns.errors import DataError


def test_official_split_names_map_to_one_vocabulary():
    assert [mf.canonical_split(n) for n in ("train", "validate", "Valid", "validation", "val", "test")] == [
        "train",
        "val",
        "val",
        "val",
        "val",
        "test",
    ]
    with pytest.raises(DataError, match="'holdout'.*train, val, test"):
        mf.canonical_split("holdout")


def test_written_rows_use_the_vocabulary_and_meta_counts_match(tmp_path):
    rows = [
        {"id": "a", "image": "a.png", "split": "train", "sentences": [{"text": "A.", "index": 0}]},
        {"id": "b", "image": "b.png", "split": "validate", "sentences": [{"text": "B.", "index": 0}]},
        {"id": "c", "image": "c.png", "split": "test", "sentences": [{"text": "C.", "index": 0}]},
    ]
    splits = mf.write_manifest(tmp_path, "mimic-cxr", "pretrain", rows, 64, tmp_path)
    assert splits == {"train": 1, "val": 1, "test": 1}
    manifest = mf.read_manifest(tmp_path)
    assert [r["split"] for r in manifest.rows] == ["train", "val", "test"]
    assert manifest.meta["splits"] == splits and manifest.meta["schema_version"] == mf.SCHEMA_VERSION
    assert [r["id"] for r in manifest.split("validate")] == ["b"] == [r["id"] for r in manifest.split("val")]
    assert [r["id"] for r in manifest.split("val", "test")] == ["b", "c"]


def test_a_manifest_written_with_official_names_still_reads(tmp_path):
    (tmp_path / mf.META_NAME).write_text(
        json.dumps({"schema_version": mf.SCHEMA_VERSION, "splits": {"train": 1, "validate": 1}})
    )
    (tmp_path / mf.MANIFEST_NAME).write_text(
        '{"image": "a.png", "split": "train"}\n{"image": "b.png", "split": "validate"}\n'
    )
    manifest = mf.read_manifest(tmp_path)
    assert manifest.meta["splits"] == {"train": 1, "val": 1}
    assert [r["split"] for r in manifest.rows] == ["train", "val"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ('{"image": "a.png"}', "needs at least `image` and `split`"),
        ('{"image": "a.png", "split": "dev2"}', "'dev2': not one of"),
    ],
)
def test_a_bad_row_names_the_file_and_line(tmp_path, line, message):
    (tmp_path / mf.META_NAME).write_text(json.dumps({"schema_version": mf.SCHEMA_VERSION}))
    (tmp_path / mf.MANIFEST_NAME).write_text('{"image": "ok.png", "split": "train"}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"manifest.jsonl:2: .*{message}"):
        mf.read_manifest(tmp_path)


def test_missing_or_foreign_meta_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="meta.json: missing; run `cmcgns preprocess"):
        mf.read_manifest(tmp_path)
    (tmp_path / mf.META_NAME).write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(DataError, match="schema version 99 but this cmcgns reads 1"):
        mf.read_manifest(tmp_path)


def test_rows_that_lead_outside_the_folder_or_sit_in_two_splits_are_refused_on_read(tmp_path):
    import json

    import pytest

    from cmcgns.data.manifest import read_manifest, write_manifest
    from cmcgns.errors import DataError

    rows = [
        {"id": "a", "image": "images/a.png", "split": "train", "labels": {}},
        {"id": "b", "image": "images/b.png", "split": "test", "labels": {}},
    ]
    write_manifest(tmp_path, "rsna", "classification", [dict(r) for r in rows], 64, tmp_path)
    read_manifest(tmp_path)
    manifest = tmp_path / "manifest.jsonl"
    for bad in ("../../secret/leak.png", "/etc/passwd", "images/../../x.png"):
        manifest.write_text(json.dumps(dict(rows[0], image=bad)) + "\n" + json.dumps(rows[1]) + "\n")
        with pytest.raises(DataError, match=r"manifest\.jsonl:1: image .* is not a relative path inside"):
            read_manifest(tmp_path)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in [*rows, dict(rows[1], split="train")]))
    with pytest.raises(DataError, match=r"manifest\.jsonl:3: id 'b' is in split train and in test \(line 2\)"):
        read_manifest(tmp_path)


PRETRAIN_ROW = {"id": "p", "image": "p.png", "split": "train", "sentences": [{"text": "No effusion.", "index": 0}]}
LABELLED_ROW = {"id": "c", "image": "c.png", "split": "train", "labels": {"Edema": 1.0, "Fracture": None}}


@pytest.mark.parametrize(
    ("kind", "row", "message"),
    [
        ("classification", {k: v for k, v in LABELLED_ROW.items() if k != "labels"}, "no `labels` field"),
        ("classification", dict(LABELLED_ROW, labels="yes"), '`labels` is "yes", not {name: 0 or 1}'),
        ("classification", dict(LABELLED_ROW, labels={"Edema": "yes"}), '`labels.Edema` is "yes", not a number'),
        ("classification", dict(LABELLED_ROW, labels={"Edema": True}), "`labels.Edema` is true, not a number"),
        ("pretrain", {k: v for k, v in PRETRAIN_ROW.items() if k != "sentences"}, "no `sentences`"),
        ("pretrain", dict(PRETRAIN_ROW, sentences=["No effusion."]), r"`sentences\[0\]` is not \{text: str"),
        ("detection", dict(LABELLED_ROW, boxes=[{"bbox": [1, 2, 3]}]), "`boxes` is not a list of"),
    ],
)
def test_a_hand_edited_row_is_one_line_naming_file_line_and_field(tmp_path, kind, row, message):
    good = PRETRAIN_ROW if kind == "pretrain" else LABELLED_ROW
    mf.write_manifest(tmp_path, "x", kind, [dict(good, id="first"), dict(row, id="second")], 64, tmp_path)
    with pytest.raises(DataError, match=rf"manifest.jsonl:2: {message}") as caught:
        mf.read_manifest(tmp_path)
    assert "\n" not in str(caught.value)
    from cmcgns.data.preprocess.verify import verify

    assert [p for p in verify(tmp_path, False) if "manifest.jsonl:2:" in p]


@pytest.mark.parametrize("kind", ["classification", "pretrain", "detection"])
def test_well_formed_rows_of_every_kind_pass(tmp_path, kind):
    row = PRETRAIN_ROW if kind == "pretrain" else dict(LABELLED_ROW, boxes=[{"bbox": [1, 2, 3, 4], "category": "x"}])
    mf.write_manifest(tmp_path, "x", kind, [row], 64, tmp_path)
    assert mf.read_manifest(tmp_path).rows[0]["id"] == row["id"]
