"""Values that are not scores, and options that cannot work (issue 20, section 6): NaN/inf are
written as JSON null and counted as "no value", never averaged or plotted as numbers; a label
that is not in the dataset and a bad option of a later task are refused before anything runs."""

import json
import math

import pytest

from cmcgns.benchmark import launch
from cmcgns.benchmark.run import run_benchmark
from cmcgns.benchmark.suite_file import SuiteFile
from cmcgns.benchmark.tables import aggregate, markdown_table, write_tables
from cmcgns.errors import CmcgnsError
from cmcgns.io.atomic import append_jsonl, dumps, write_json


def test_nan_and_inf_are_written_as_null_and_the_file_stays_json(tmp_path):
    row = {"metrics": {"auroc": float("nan"), "loss": float("inf"), "acc": 0.5}, "nested": [float("-inf"), 1.0]}
    append_jsonl(tmp_path / "r.jsonl", row)
    write_json(tmp_path / "r.json", row)
    text = (tmp_path / "r.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    parsed = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the file"))
    assert parsed == {"metrics": {"auroc": None, "loss": None, "acc": 0.5}, "nested": [None, 1.0]}
    assert json.loads((tmp_path / "r.json").read_text()) == parsed
    assert dumps({"x": math.nan}) == '{"x": null}'


def test_runs_without_a_value_are_counted_not_averaged_and_the_plot_draws(tmp_path):
    rows = [
        {"task": "rsna-cls", "fraction": 1.0, "seed": s, "metrics": {"auroc": v}}
        for s, v in enumerate([0.6, 0.8, None, float("inf")])
    ]
    from cmcgns.benchmark.tables import result_line

    assert "auroc no value" in result_line(dict(rows[2], metrics={"auroc": None}))  # a row read back from JSON
    (entry,) = aggregate(rows)
    assert entry["mean"] == pytest.approx(0.7) and entry["n"] == 2 and entry["no_value"] == 2
    assert "| 2 (2 no value) |" in markdown_table([entry])
    assert write_tables([entry], tmp_path, title="t")["plot"].is_file()
    (nothing,) = aggregate([dict(rows[2], seed=0)])
    assert math.isnan(nothing["mean"]) and nothing["n"] == 0
    assert write_tables([nothing], tmp_path / "empty", title="t")["plot"].is_file()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from cmcgns.data.bootstrap import ensure_synthetic

    root = tmp_path_factory.mktemp("data")
    ensure_synthetic("rsna", root, 80, 0, 64, 32)
    ensure_synthetic("covidx", root, 80, 0, 64, 32)
    return root


FAST = {"epochs": 1, "num_workers": 0, "image_size": 32, "feature_cache": False, "protocol": "fast"}


def test_a_label_the_dataset_does_not_have_is_refused_naming_the_ones_it_has(tmp_path, data_root):
    suite = SuiteFile(
        tasks=["rsna-cls"],
        fractions=[1.0],
        seeds=[0],
        options={"rsna-cls": dict(FAST, labels=["Pneumonai"])},
        synthetic=True,
        synthetic_studies=80,
    )
    report = run_benchmark(suite, tmp_path / "out", None, data_root)
    (failed,) = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert failed["status"] == "failed"
    assert "labels: 'Pneumonai' is not a label of" in failed["error"] and "(it has: Pneumonia)" in failed["error"]
    assert report.failures


def test_a_bad_option_of_a_later_task_is_refused_before_the_first_task_runs(tmp_path, data_root, monkeypatch):
    monkeypatch.setattr(launch, "execute", lambda spec, threads=None: pytest.fail("a run started"))
    suite = SuiteFile(
        tasks=["rsna-cls", "covidx-cls"],
        fractions=[1.0],
        task_fractions={"covidx-cls": [0.1]},  # another fraction group: today it runs after rsna-cls
        seeds=[0],
        options={"rsna-cls": FAST, "covidx-cls": dict(FAST, epochs=-3)},
        synthetic=True,
        synthetic_studies=80,
    )
    with pytest.raises((CmcgnsError, ValueError), match="covidx-cls|epochs"):
        run_benchmark(suite, tmp_path / "out", None, data_root)
    assert not (tmp_path / "out" / "results.jsonl").exists()
