"""The zero-shot and retrieval tasks run by the benchmark like the others."""

from __future__ import annotations

import pytest

from cmcgns.benchmark.suite import run_suite
from cmcgns.errors import DataError
from cmcgns.joint.export import ModelFolder

TASKS = ["chexpert-zeroshot", "rsna-zeroshot", "mimic-retrieval"]
OPTIONS = {"mimic-retrieval": {"eval_set": "split", "bootstrap": 50}, "chexpert-zeroshot": {"bootstrap": 50}}
STUDIES = {"default": 120, "chexpert": 300}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_tasks_that_train_nothing_run_once_per_model_and_record_its_hash(finished_run, data_root, tmp_path):
    export = finished_run.run_dir / "export"
    rows = run_suite(TASKS, [0.1, 1.0], [3, 4], tmp_path, export, data_root, OPTIONS, STUDIES, synthetic=True)
    assert [r["task"] for r in rows] == TASKS
    assert all(r["fraction"] == 1.0 and r["seed"] == 3 and r["protocol"] == "zero-shot" for r in rows)
    model_hash = ModelFolder.read(finished_run.run_dir).weights_id
    assert all(r["model_hash"] == model_hash and r["dataset_kind"] == "synthetic" for r in rows)
    chexpert, rsna, retrieval = (r["metrics"] for r in rows)
    assert 0 <= chexpert["acc"] <= 1 and chexpert["chance_acc"] == 0.2
    assert chexpert["test_rows"] == 5 * chexpert["per_class"] and chexpert["acc_ci_low"] <= chexpert["acc"]
    assert 0 <= rsna["auroc"] <= 1 and rsna["prompts"] == 8
    assert (
        retrieval["candidates"] == retrieval["test_rows"] >= 2 and retrieval["chance_r1"] == 1 / retrieval["candidates"]
    )
    assert retrieval["i2t_r1"] <= retrieval["i2t_r5"] <= retrieval["i2t_r10"]
    # RUN/model itself is accepted as --backbone too, and gives the same numbers
    again = run_suite(
        TASKS[:1],
        [1.0],
        [3],
        tmp_path / "b",
        finished_run.run_dir / "model",
        data_root,
        OPTIONS,
        STUDIES,
        synthetic=True,
    )
    assert again[0]["metrics"] == rows[0]["metrics"] and again[0]["backbone"] == model_hash


def test_the_random_init_baseline_copies_the_models_architecture(finished_run, data_root, tmp_path):
    export = finished_run.run_dir / "export"
    rows = run_suite(
        TASKS[1:2], [1.0], [0], tmp_path, None, data_root, OPTIONS, STUDIES, synthetic=True, random_init_like=export
    )
    assert rows[0]["model_hash"] == "random-init" and rows[0]["metrics"]["image_size"] == 32
    with pytest.raises(DataError, match="need a model"):
        run_suite(TASKS[1:2], [1.0], [0], tmp_path / "x", None, data_root, OPTIONS, STUDIES, synthetic=True)


def test_a_backbone_without_the_whole_model_is_named(finished_run, data_root, tmp_path):
    import shutil

    lone = tmp_path / "run" / "export"
    shutil.copytree(finished_run.run_dir / "export", lone)
    with pytest.raises(DataError, match=r"no whole model here or beside it"):
        run_suite(TASKS[1:2], [1.0], [0], tmp_path / "o", lone, data_root, OPTIONS, STUDIES, synthetic=True)
