"""Split ID files: written by every preprocess run, checked by verify, and taken back by
`preprocess --splits DIR` so that another lab (or a paper's lists) gets the same rows."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cmcgns.cli.app import app
from cmcgns.data.manifest import read_manifest

runner = CliRunner()


def _prepare(tmp_path, dataset="rsna", n=30, extra=()):
    raw = tmp_path / "raw"
    if not raw.exists():
        res = runner.invoke(app, ["synth", dataset, "--out", str(raw), "--n", str(n), "--image-size", "48"])
        assert res.exit_code == 0, res.output
    out = tmp_path / f"p{len(list(tmp_path.glob('p*')))}"
    res = runner.invoke(
        app, ["preprocess", dataset, "--source", str(raw), "--out", str(out), "--image-size", "32", *extra]
    )
    assert res.exit_code == 0, res.output
    return out, " ".join(res.output.split())


def _ids(folder, split):
    return [r["id"] for r in read_manifest(folder).split(split)]


def test_every_split_is_written_as_an_id_list_and_verify_checks_it(tmp_path):
    out, _ = _prepare(tmp_path)
    for split in ("train", "val", "test"):
        listed = (out / "splits" / f"{split}.txt").read_text().split()
        assert listed == _ids(out, split) and listed
    assert runner.invoke(app, ["preprocess", "verify", str(out)]).exit_code == 0
    (out / "splits" / "test.txt").write_text("\n".join(_ids(out, "test")[1:]) + "\n")
    res = runner.invoke(app, ["preprocess", "verify", str(out)])
    assert res.exit_code == 1 and "test.txt" in res.output.replace("\n", "")  # the console may wrap a long path


def test_verify_refuses_an_id_in_two_splits(tmp_path):
    out, _ = _prepare(tmp_path)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    test_row = next(json.loads(line) for line in lines if json.loads(line)["split"] == "test")
    lines.append(json.dumps(dict(test_row, split="train")))  # every test row copied into train, in miniature
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    res = runner.invoke(app, ["preprocess", "verify", str(out)])
    assert res.exit_code == 1 and f"id {test_row['id']!r} is in both" in " ".join(res.output.split())


def test_given_lists_assign_the_rows_and_missing_ids_are_counted_and_named(tmp_path):
    first, _ = _prepare(tmp_path)
    lists = tmp_path / "published"
    lists.mkdir()
    train, val, test = _ids(first, "train"), _ids(first, "val"), _ids(first, "test")
    moved = train[0]  # the published lists put one of our training rows into test, leave one row out
    (lists / "train.txt").write_text("\n".join(train[2:]) + "\n")
    (lists / "val.txt").write_text("\n".join(val) + "\n")
    (lists / "test.txt").write_text("# published test ids\n" + "\n".join([moved, *test, "no-such-id"]) + "\n")
    second, output = _prepare(tmp_path, extra=["--splits", str(lists)])
    assert _ids(second, "test") == sorted([moved, *test]) or set(_ids(second, "test")) == {moved, *test}
    assert set(_ids(second, "train")) == set(train[2:]) and train[1] not in {
        r["id"] for r in read_manifest(second).rows
    }
    report = json.loads((second / "drop_report.json").read_text())
    assert report["by_reason"]["not_in_split_lists"] == 1
    assert report["split_lists"]["missing"] == 1 and report["split_lists"]["missing_examples"] == ["no-such-id"]
    assert "1 listed id(s) are not in the data, e.g. no-such-id" in output
    coco = json.loads((second / "coco_test.json").read_text()) if (second / "coco_test.json").exists() else None
    meta = json.loads((second / "meta.json").read_text())
    for split, name in meta["coco"].items():  # the detection files follow the new splits
        assert len(json.loads((second / name).read_text())["images"]) == len(_ids(second, split))
    assert coco is None or len(coco["images"]) == len(_ids(second, "test"))
    assert runner.invoke(app, ["preprocess", "verify", str(second)]).exit_code == 0
    # the lists a run wrote give the same rows again
    third, _ = _prepare(tmp_path, extra=["--splits", str(second / "splits")])
    assert all(_ids(third, s) == _ids(second, s) for s in ("train", "val", "test"))


def test_a_bad_split_folder_is_one_line(tmp_path):
    raw_missing = tmp_path / "nothing"
    raw_missing.mkdir()
    res = runner.invoke(
        app,
        ["preprocess", "covidx", "--source", str(tmp_path), "--out", str(tmp_path / "o"), "--splits", str(raw_missing)],
    )
    assert res.exit_code == 2 and "holds none of train.txt" in " ".join(res.output.split())
    twice = tmp_path / "twice"
    twice.mkdir()
    (twice / "train.txt").write_text("a\nb\n")
    (twice / "test.txt").write_text("b\n")
    res = runner.invoke(
        app, ["preprocess", "covidx", "--source", str(tmp_path), "--out", str(tmp_path / "o"), "--splits", str(twice)]
    )
    assert res.exit_code == 2 and "id 'b' is also in train.txt" in " ".join(res.output.split())


def test_the_chexpert_validation_hold_out_shares_no_patient_with_training(tmp_path):
    out, _ = _prepare(tmp_path, "chexpert", n=80)
    rows = read_manifest(out).rows
    train = {r["patient"] for r in rows if r["split"] == "train"}
    val = {r["patient"] for r in rows if r["split"] == "val"}
    assert train and val and not train & val  # MGCA's random draw leaves most validation patients in training


def test_the_chexpert_hold_out_takes_whole_patients_up_to_its_image_count():
    from cmcgns.data.preprocess.chexpert import hold_out_patients

    candidates = {
        f"{p}-{i}": {"id": f"{p}-{i}", "patient": p, "split": "train"}
        for p, n in (("a", 3), ("b", 1), ("c", 2))
        for i in range(n)
    }
    candidates["t"] = {"id": "t", "patient": "a", "split": "test"}  # official valid: never moved
    held = hold_out_patients(candidates, 2)
    val = {r["patient"] for r in candidates.values() if r["split"] == "val"}
    assert held["images"] >= 2 and held["patients"] == len(val)
    for patient in val:  # whole patients only
        assert all(r["split"] == "val" for r in candidates.values() if r["patient"] == patient and r["id"] != "t")
    assert candidates["t"]["split"] == "test"
    assert hold_out_patients(dict(candidates), 0) == {"images": 0, "patients": 0}


def test_the_chexpert_hold_out_is_at_most_a_tenth_of_train_on_small_data(tmp_path):
    out, _ = _prepare(tmp_path, "chexpert", n=80)
    meta = read_manifest(out).meta
    holdout = meta["val_holdout"]
    train_csv_images = holdout["images"] + meta["splits"]["train"]  # before unreadable images dropped
    assert 0 < holdout["images"] <= max(1, train_csv_images // 10) + 5  # whole patients may overshoot a little
