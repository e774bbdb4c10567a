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
    assert judged == {(t, f) for t in suite.tasks for f in suite.fractions}


def test_suite_file_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "suite.yaml"
    bad.write_text("tasks: [covidx-cls]\nfractions: [0]\n")
    res = CliRunner().invoke(app, ["benchmark", "--suite", str(bad)])
    assert res.exit_code == 2 and "suite.yaml" in res.output and "fractions" in res.output
    bad.write_text("tasks: [covidx-cls]\noptions: {rsna-det: {iters: 1}}\n")
    res = CliRunner().invoke(app, ["benchmark", "--suite", str(bad)])
    assert res.exit_code == 2 and "rsna-det" in res.output


@pytest.mark.mm
def test_ci_suite_passes_its_expected_values(tmp_path, tiny_pretrain_config):
    from cmcgns.training.pretrain import pretrain

    summary = pretrain(tiny_pretrain_config(stages=[{"name": "a", "steps": 2}]), progress=False)
    export = Path(summary["export"]["mm"]).parent
    res = CliRunner().invoke(
        app,
        [
            "benchmark",
            "--suite",
            str(BENCHMARKS / "ci_suite.yaml"),
            "--backbone",
            str(export),
            "--data-root",
            str(tmp_path / "data"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    suite = load_suite(BENCHMARKS / "ci_suite.yaml")
    assert len(rows) == len(suite.tasks) * len(suite.fractions) * len(suite.seeds)
    assert {r["checkpoint_hash"] for r in rows} != {"random-init"}  # the suite really ran on our export
