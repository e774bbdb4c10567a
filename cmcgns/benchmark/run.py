"""`cmcgns benchmark` as one library call: run a suite, aggregate, write the tables, judge the gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from collections.abc import Callable

from cmcgns.benchmark.gate import check, check_tasks_exist, load_expected
from cmcgns.benchmark.reference import load_reference
from cmcgns.benchmark.suite import run_suite
from cmcgns.benchmark.suite_file import SuiteFile
from cmcgns.benchmark.tables import aggregate, markdown_table, write_tables
from cmcgns.plugins.manager import get_registry


@dataclasses.dataclass
class BenchmarkReport:
    rows: list[dict]  # one per task x fraction x seed, as appended to results.jsonl
    summary: list[dict]  # mean +- std per task x fraction x metric
    failures: list[str]  # regression-gate messages; empty = passed (or no expected values)
    table: str  # the markdown table printed and written beside the results


def run_benchmark(
    suite: SuiteFile,
    out: Path,
    backbone: Path | None,
    data_root: Path,
    reference: Path | None = None,
    device: str = "cpu",
    on_result: Callable[[dict], None] | None = None,
) -> BenchmarkReport:
    expectations = load_expected(suite.expected) if suite.expected else []  # read before hours of work, not after
    if expectations:
        check_tasks_exist(expectations, suite.expected, get_registry().names("downstream_task"))
    reference_values = load_reference(reference).lookup() if reference else None
    rows = run_suite(
        suite.tasks,
        suite.fractions,
        suite.seeds,
        out,
        backbone,
        data_root,
        suite.options,
        suite.synthetic_studies,
        device=device,
        on_result=on_result,
    )
    summary = aggregate(rows)
    bounds = {(e.task, float(e.fraction), e.metric): e.bounds() for e in expectations}
    weights = rows[0]["checkpoint_hash"] if rows else "random-init"
    title = f"backbone {weights}" + (f" ({backbone})" if backbone else " (random init)")
    write_tables(summary, out, reference_values, bounds, title)
    return BenchmarkReport(rows, summary, check(summary, expectations), markdown_table(summary, reference_values))
