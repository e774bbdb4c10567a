"""Fixed evaluation sets: the 5x200 draw rule, the lists preprocess writes, and their exclusion
from classification training."""

from __future__ import annotations

import pytest

from cmcgns.data.manifest import read_manifest
from cmcgns.data.preprocess.eval_sets import (
    FIVE_CLASSES,
    EvalSetRule,
    draw,
    eval_set_rows,
    exclusive_class,
    read_id_list,
    training_exclusions,
)
from cmcgns.errors import DataError


def _row(i, split="train", **labels):
    values = dict.fromkeys(FIVE_CLASSES)
    values.update({k.replace("_", " "): v for k, v in labels.items()})
    return {"id": f"r{i}", "split": split, "labels": values}


def test_exactly_one_definite_positive_among_the_five():
    assert exclusive_class(_row(0, Edema=1.0), FIVE_CLASSES) == "Edema"
    assert exclusive_class(_row(0, Edema=1.0, Cardiomegaly=0.0), FIVE_CLASSES) == "Edema"
    assert exclusive_class(_row(0, Edema=1.0, Cardiomegaly=1.0), FIVE_CLASSES) is None  # two positives
    assert exclusive_class(_row(0, Edema=1.0, Atelectasis=-1.0), FIVE_CLASSES) is None  # another uncertain
    assert exclusive_class(_row(0, Edema=-1.0), FIVE_CLASSES) is None  # uncertain is not positive
    # raw mentions win over policy-mapped labels (CheXpert's U-ones would make this row two-positive)
    row = _row(0, Edema=1.0, Atelectasis=1.0)
    row["raw_labels"] = dict(row["labels"], Atelectasis=-1.0)
    assert exclusive_class(row, FIVE_CLASSES) is None
    row["raw_labels"]["Atelectasis"] = None
    assert exclusive_class(row, FIVE_CLASSES) == "Edema"


def test_the_draw_is_balanced_seeded_and_from_its_split_only():
    rows = [_row(i, Atelectasis=1.0) for i in range(10)] + [_row(10 + i, Edema=1.0) for i in range(4)]
    rows += [_row(20 + i, "test", Edema=1.0) for i in range(5)]
    rule = EvalSetRule("x", "train", ("Atelectasis", "Edema"), per_class=6)
    chosen, eligible = draw(rows, rule)
    assert eligible == {"Atelectasis": 10, "Edema": 4}
    assert [len(v) for v in chosen.values()] == [4, 4]  # the smallest class sets the count
    assert chosen == draw(list(reversed(rows)), rule)[0]  # order of the rows does not matter
    assert chosen != draw(rows, EvalSetRule("x", "train", ("Atelectasis", "Edema"), per_class=6, seed=1))[0]
    assert all(int(i[1:]) < 20 for ids in chosen.values() for i in ids)


def test_preprocess_writes_the_lists_and_chexpert_cls_never_trains_on_them(tmp_path):
    from cmcgns.data.bootstrap import ensure_synthetic
    from cmcgns.downstream.classification import ClassificationOptions, split_rows

    prepared = ensure_synthetic("chexpert", tmp_path, 400, 0, 48, 32)
    manifest = read_manifest(prepared)
    entry = manifest.meta["eval_sets"]["chexpert-5x200"]
    ids = read_id_list(prepared / entry["file"])
    assert entry["exclude_from_training"] and entry["split"] == "train"
    assert len(ids) == 5 * entry["per_class"] > 0 and entry["per_class"] == min(entry["eligible"].values())
    rows, labels, source = eval_set_rows(manifest, "chexpert-5x200", None, FIVE_CLASSES)
    assert source == "preprocess" and [r["id"] for r in rows] == ids
    assert all(labels.count(c) == entry["per_class"] for c in FIVE_CLASSES)
    assert training_exclusions(manifest) == set(ids)
    train, val, test = split_rows(manifest, 1.0, 0, list(FIVE_CLASSES), ClassificationOptions())
    assert not {r["id"] for r in train + val} & set(ids)
    assert len(train) + len(val) == manifest.meta["splits"]["train"] + manifest.meta["splits"].get("val", 0) - len(ids)


def test_a_given_id_list_is_checked_row_by_row(tmp_path):
    from cmcgns.data.bootstrap import ensure_synthetic

    prepared = ensure_synthetic("chexpert", tmp_path, 120, 0, 48, 32)
    manifest = read_manifest(prepared)
    mine = tmp_path / "mine.txt"
    mine.write_text("# a published list\nnot-a-row\n")
    with pytest.raises(DataError, match=r"mine\.txt: id 'not-a-row' is not a row"):
        eval_set_rows(manifest, "chexpert-5x200", mine, FIVE_CLASSES)
    negative = next(r for r in manifest.rows if exclusive_class(dict(r), FIVE_CLASSES) is None)
    mine.write_text(f"{negative['id']}\n")
    with pytest.raises(DataError, match="not positive for exactly one"):
        eval_set_rows(manifest, "chexpert-5x200", mine, FIVE_CLASSES)
