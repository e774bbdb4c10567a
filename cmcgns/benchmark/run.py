"""`cmcgns benchmark` as one library call: run a suite, aggregate, write the tables, judge the gate."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Concatenate, ParamSpec
from collections.abc import Callable

from cmcgns import distributed
from cmcgns.benchmark.gate import check, check_tasks_exist, load_expected, needs_baseline
from cmcgns.benchmark.reference import load_reference
from cmcgns.benchmark.suite import build_tasks, run_suite, task_components, weights_ids
from cmcgns.benchmark.suite_file import SuiteFile
from cmcgns.benchmark.tables import aggregate, markdown_table, write_tables
from cmcgns.errors import ConfigError
from cmcgns.io.folder_lock import FolderLock
from cmcgns.plugins.manager import get_registry


@dataclasses.dataclass
class BenchmarkReport:
    rows: list[dict]  # one per task x fraction x seed, as appended to results.jsonl
    summary: list[dict]  # mean +- std per task x fraction x metric
    failures: list[str]  # regression-gate messages; empty = passed (or no expected values)
    table: str  # the markdown table written beside the results (summary.md)
    files: dict[str, Path] = dataclasses.field(default_factory=dict)  # results, markdown, csv, plot


BENCHMARK_LOCK = ".benchmark.lock"
P = ParamSpec("P")


def _one_writer(
    fn: Callable[Concatenate[SuiteFile, Path, P], BenchmarkReport],
) -> Callable[Concatenate[SuiteFile, Path, P], BenchmarkReport]:
    """One benchmark process per `--out`: a second one into the same folder is refused at once,
    naming the holder (both would append rows, and the summary would describe only the last).
    Under torchrun the main rank holds the lock for all."""

    @functools.wraps(fn)
    def locked(suite: SuiteFile, out: Path, *args: P.args, **kwargs: P.kwargs) -> BenchmarkReport:
        if not distributed.is_main():
            return fn(suite, out, *args, **kwargs)
        with FolderLock(Path(out), BENCHMARK_LOCK, ConfigError, "give another --out"):
            return fn(suite, out, *args, **kwargs)

    return locked


@_one_writer
def run_benchmark(
    suite: SuiteFile,
    out: Path,
    backbone: Path | None,
    data_root: Path,
    reference: Path | None = None,
    device: str = "cpu",
    on_result: Callable[[dict], None] | None = None,
    compare_random_init: bool = False,
    on_pass: Callable[[str, list[dict]], None] | None = None,
    launcher: str = "sequential",
    rerun: bool = False,
    ray_address: str | None = None,
    ray_cpus_per_run: int = 1,
    ray_processes_per_run: int = 1,
) -> BenchmarkReport:
    """`compare_random_init` also runs the suite on a random-init backbone with the same splits and
    seeds, shown beside each result; `beats: random-init` gate entries run that baseline for the tasks
    they judge, and `beats: untrained-head` entries run their tasks once more with the head untrained."""
    build_tasks(task_components(suite.tasks), suite.options, suite.protocol)  # every task's options, before any run
    expectations = load_expected(suite.expected) if suite.expected else []  # read before hours of work, not after
    if expectations:
        check_tasks_exist(expectations, suite.expected, get_registry().names("downstream_task"))
    reference_values = load_reference(reference).lookup() if reference else None

    def run_on(
        backbone_dir: Path | None,
        out_dir: Path,
        report: Callable[[dict], None] | None,
        tasks: list[str] | None = None,
        extra: dict | None = None,
        label: str = "",
    ) -> list[dict]:
        options = {name: dict(suite.options.get(name, {}), **(extra or {})) for name in tasks or suite.tasks}
        groups: dict[tuple[float, ...], list[str]] = {}  # tasks sharing their label fractions run together
        for name in tasks or suite.tasks:
            groups.setdefault(tuple(suite.fractions_for(name)), []).append(name)
        rows = []
        for fractions, names in groups.items():
            rows += run_suite(
                names,
                list(fractions),
                suite.seeds,
                out_dir,
                backbone_dir,
                data_root,
                {name: options[name] for name in names},
                suite.synthetic_studies,
                device=device,
                on_result=report,
                synthetic=suite.synthetic,
                protocol=suite.protocol,
                label=label,
                random_init_like=backbone if backbone_dir is None else None,
                launcher=launcher,
                rerun=rerun,
                keep_going=True,
                ray_address=ray_address,
                ray_cpus_per_run=ray_cpus_per_run,
                ray_processes_per_run=ray_processes_per_run,
            )
        failed.extend((label or "backbone", r) for r in rows if r.get("status", "ok") != "ok")
        return [r for r in rows if r.get("status", "ok") == "ok"]

    failed: list[tuple[str, dict]] = []

    def finished(label: str, summary: list[dict]) -> list[dict]:
        if on_pass is not None and distributed.is_main():
            on_pass(label, summary)
        return summary

    rows = run_on(backbone, Path(out), on_result)
    weights = weights_ids(backbone)[0]
    summary = finished(f"backbone {weights} ({backbone})" if backbone else "random init", aggregate(rows))
    baseline = None
    baselines: dict[str, list[dict]] = {}
    judged_random = needs_baseline(expectations)
    if (judged_random or compare_random_init) and backbone is not None:  # same splits and seeds, random init
        tasks = None if compare_random_init else judged_random  # the gate alone needs only the tasks it judges
        random_rows = run_on(None, Path(out) / "baseline-random-init", on_result, tasks, label="random-init baseline")
        baseline = baselines["random-init"] = finished(
            "random-init baseline (same splits and seeds)", aggregate(random_rows)
        )
    untrained = needs_baseline(expectations, "untrained-head")
    if untrained:  # the same tasks scored before their heads train
        rows_untrained = run_on(
            backbone, Path(out) / "baseline-untrained-head", on_result, untrained, {"untrained": True}
        )
        baselines["untrained-head"] = finished("untrained-head baseline (heads not trained)", aggregate(rows_untrained))
    bounds = {(e.task, float(e.fraction), e.metric): e.bounds() for e in expectations}
    title = f"backbone {weights}" + (f" ({backbone})" if backbone else " (random init)")
    kinds = sorted({r["dataset_kind"] for r in rows})
    protocols = sorted({str(r["protocol"]) for r in rows})
    header = [
        f"- backbone: `{weights}`" + (f" ({backbone})" if backbone else " (random init)"),
        f"- protocol: {', '.join(protocols) or '-'}",
        f"- data: {', '.join(kinds) or '-'}",
        f"- seeds: {', '.join(str(s) for s in suite.seeds)}",
    ]
    if baseline is not None:
        header.append("- random init: the same tasks, splits and seeds on a randomly initialised backbone")
    note = "\n".join(header)
    if any(kind != "real" for kind in kinds):
        note += (
            "\n\n**Synthetic data**: results on datasets generated by cmcgns (`--synthetic`; Open-i rows may pair "
            "real reports with generated images), not comparable with published numbers."
        )
        title += " - SYNTHETIC DATA"
    files: dict[str, Path] = {"results": Path(out) / "results.jsonl"}
    if distributed.is_main():  # under torchrun every rank holds the same rows; one writes the tables
        files.update(write_tables(summary, out, reference_values, bounds, title, note, baseline))
    run_failures = [
        f"{r['task']} @{float(r['fraction']):g} seed {r['seed']} ({where}): run failed, no row ({r.get('error', '')})"
        for where, r in failed
    ]
    return BenchmarkReport(
        rows,
        summary,
        run_failures
        + check(
            summary,
            expectations,
            baselines,
            planned={
                (e.task, float(e.fraction))
                for e in expectations
                if e.task in suite.tasks and float(e.fraction) in suite.fractions_for(e.task)
            },
        ),
        markdown_table(summary, reference_values, note, baseline),
        files,
    )
