from pathlib import Path

import pytest

from cmcgns.benchmark.reference import load_reference
from cmcgns.benchmark.tables import markdown_table, write_tables
from cmcgns.errors import ConfigError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SUMMARY = [
    {"task": "rsna-cls", "fraction": 0.01, "metric": "auroc", "mean": 0.8, "std": 0.01, "n": 3},
    {"task": "rsna-cls", "fraction": 1.0, "metric": "auroc", "mean": 0.9, "std": 0.0, "n": 3},
]


def test_paper_table_file_is_valid():
    table = load_reference(BENCHMARKS / "paper_table.yaml")
    keys = table.lookup()
    assert ("siim-seg", 0.01, "dice") in keys and ("rsna-det", 1.0, "map_40_75_mgca") in keys


def test_reference_column_in_markdown_and_csv(tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_text(
        "source: test\nentries:\n  - {task: rsna-cls, fraction: 0.01, metric: auroc, value: 0.885}\n"
        "  - {task: rsna-cls, fraction: 1.0, metric: auroc, value: null}\n"
    )
    lookup = load_reference(ref).lookup()
    md = markdown_table(SUMMARY, lookup)
    assert "| reference |" in md.splitlines()[0]
    assert md.splitlines()[2].endswith("| 0.8850 |") and md.splitlines()[3].endswith("| — |")
    write_tables(SUMMARY, tmp_path / "out", lookup)
    csv_lines = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert csv_lines[0].endswith(",reference") and csv_lines[1].endswith(",0.885")
    assert "reference" not in markdown_table(SUMMARY)  # no column unless asked for


def test_reference_values_must_be_fractions(tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_text("source: test\nentries:\n  - {task: rsna-cls, fraction: 0.01, metric: auroc, value: 88.5}\n")
    with pytest.raises(
        ConfigError,
        match=r"ref.yaml \(reference table\): invalid configuration\n  - entries.0.value: Input should be less than or equal to 1",
    ):
        load_reference(ref)


def test_a_value_from_another_protocol_says_so_and_detection_takes_mgcas_metric(tmp_path):
    ref = tmp_path / "ref.yaml"
    ref.write_text("source: test\nentries:\n  - {task: rsna-cls, fraction: 0.01, metric: auroc, value: 0.885}\n")
    lookup = load_reference(ref).lookup()
    fast = [dict(SUMMARY[0], protocol="fast")]
    assert markdown_table(fast, lookup).splitlines()[2].endswith("| 0.8850 (measured under mgca; this row: fast) |")
    assert markdown_table([dict(SUMMARY[0], protocol="mgca")], lookup).splitlines()[2].endswith("| 0.8850 |")
    ref.write_text("source: test\nentries:\n  - {task: rsna-det, fraction: 1.0, metric: map, value: 0.2}\n")
    with pytest.raises(ConfigError, match="rsna-det map: published detection values .* map_40_75_mgca"):
        load_reference(ref)
