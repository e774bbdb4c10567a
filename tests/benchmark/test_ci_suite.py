"""The synthetic CI suite in benchmarks/ (ci_suite.yaml + ci_expected.yaml) run through the
`cmcgns benchmark --suite` CLI on a freshly pretrained tiny backbone, plus the suite-file checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cmcgns.benchmark.gate import load_expected
from cmcgns.benchmark.suite_file import load_suite
from cmcgns.cli.app import app

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_ci_suite_file_is_valid_and_gated():
    suite = load_suite(BENCHMARKS / "ci_suite.yaml")
    assert suite.expected == BENCHMARKS / "ci_expected.yaml"  # resolved next to the suite file
    expected = load_expected(suite.expected)
    judged = {(e.task, e.fraction) for e in expected}
    # every task x fraction the suite runs is judged by at least one expectation
    assert judged == {(t, f) for t in suite.tasks for f in suite.fractions_for(t)}
    assert suite.pretrain == BENCHMARKS / "ci_pretrain.yaml" and suite.pretrain.is_file()  # it names its backbone
    assert any(e.beats == "random-init" for e in expected)  # a broken method can fail it


def test_suite_file_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "suite.yaml"
    bad.write_text("tasks: [covidx-cls]\nfractions: [0]\n")
    res = CliRunner().invoke(app, ["benchmark", "--suite", str(bad)])
    assert res.exit_code == 2 and "suite.yaml" in res.output and "fractions" in res.output
    bad.write_text("tasks: [covidx-cls]\noptions: {rsna-det: {iters: 1}}\n")
    res = CliRunner().invoke(app, ["benchmark", "--suite", str(bad)])
    assert res.exit_code == 2 and "rsna-det" in res.output


@pytest.mark.mm
def test_ci_suite_passes_its_gate_on_the_backbone_it_pretrains(tmp_path):
    """About 8 minutes on 2 cores: the pretraining the suite names, then the suite, its random-init
    baseline and its untrained-head baseline. benchmarks/ci_gate.py shows the same gate failing
    when the report pairing is shuffled."""
    suite = load_suite(BENCHMARKS / "ci_suite.yaml")
    run = tmp_path / "pretrain"
    res = CliRunner().invoke(app, ["pretrain", "-c", str(suite.pretrain), "--set", f"run_dir={run}"])
    assert res.exit_code == 0, res.output
    args = ["benchmark", "--suite", str(BENCHMARKS / "ci_suite.yaml"), "--backbone", str(run / "export")]
    res = CliRunner().invoke(app, args + ["--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert len(rows) == sum(len(suite.fractions_for(t)) for t in suite.tasks) * len(suite.seeds)
    assert {r["checkpoint_hash"] for r in rows} != {"random-init"}  # the suite really ran on our export
    assert (tmp_path / "out" / "baseline-random-init" / "results.jsonl").is_file()
    assert (tmp_path / "out" / "baseline-untrained-head" / "results.jsonl").is_file()


@pytest.mark.parametrize("name", ["ci_suite.yaml", "synthetic_mgca_suite.yaml"])
def test_packaged_suite_files_load_and_name_registered_tasks(name):
    from cmcgns.plugins.manager import get_registry

    suite = load_suite(BENCHMARKS / name)
    assert set(suite.tasks) <= set(get_registry().names("downstream_task"))
    for task, options in suite.options.items():  # every option is one the task accepts
        get_registry().get("downstream_task", task).build(options)
