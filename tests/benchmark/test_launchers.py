"""Benchmark sweeps beyond one process: resumable (a restarted sweep runs only the missing rows),
failed runs recorded without stopping the others, and the Ray launcher giving the sequential rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cmcgns.benchmark import launch
from cmcgns.benchmark.run import run_benchmark
from cmcgns.benchmark.suite import run_suite
from cmcgns.benchmark.suite_file import SuiteFile

OPTIONS = {"rsna-cls": {"epochs": 1, "num_workers": 0, "image_size": 32, "feature_cache": False, "protocol": "fast"}}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from cmcgns.data.bootstrap import ensure_synthetic

    root = tmp_path_factory.mktemp("data")
    ensure_synthetic("rsna", root, 80, 0, 64, 32)
    return root


def _ok_rows(path):
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            assert line.startswith('{"task": "rsna-cls", "frac'), line  # only the torn line we wrote
    return [r for r in rows if r.get("status", "ok") == "ok"]


def test_a_killed_sweep_restarts_with_only_the_missing_runs(data_root, tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "cmcgns", "benchmark", "--tasks", "rsna-cls", "--fractions", "0.5,1.0",
        "--seeds", "0,1,2", "--protocol", "fast", "--data-root", str(data_root), "--out", str(out),
        "--set", "rsna-cls.epochs=1", "--set", "rsna-cls.num_workers=0", "--set", "rsna-cls.image_size=32",
        "--synthetic", "--synthetic-studies", "80",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if results.is_file() and len(results.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    recorded = _ok_rows(results)
    assert 2 <= len(recorded) < 6, "the sweep should have been killed part-way"
    with results.open("a") as handle:
        handle.write('{"task": "rsna-cls", "frac')  # the torn last line a kill can leave
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{len(recorded)} of 6 runs already recorded" in again.stderr
    assert again.stderr.count("benchmark [") == 6 - len(recorded)  # only the missing runs ran
    rows = _ok_rows(results)
    keys = [launch.row_key(r) for r in rows]
    assert len(rows) == 6 and len(set(keys)) == 6
    rerun = subprocess.run(
        [*command, "--rerun", "--seeds", "0", "--fractions", "1.0"], capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0 and "already recorded" not in rerun.stderr and rerun.stderr.count("benchmark [") == 1


def test_a_failed_run_is_recorded_with_its_error_and_the_others_go_on(data_root, tmp_path, monkeypatch):
    real = launch.execute

    def flaky(spec, threads=None):
        if spec.seed == 1:
            raise RuntimeError("CUDA error: an illegal memory access (simulated)")
        return real(spec, threads)

    monkeypatch.setattr(launch, "execute", flaky)
    expected = tmp_path / "expected.yaml"
    expected.write_text("- {task: rsna-cls, fraction: 1.0, metric: auroc, min: 0.0}\n")
    suite = SuiteFile(
        tasks=["rsna-cls"],
        fractions=[1.0],
        seeds=[0, 1, 2],
        options=OPTIONS,
        expected=expected,
        synthetic=True,
        synthetic_studies=80,
    )
    report = run_benchmark(suite, tmp_path / "out", None, data_root)
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    failed = [r for r in rows if r["status"] == "failed"]
    assert (
        len(rows) == 3 and len(failed) == 1 and failed[0]["seed"] == 1 and "illegal memory access" in failed[0]["error"]
    )
    assert [s["n"] for s in report.summary if s["metric"] == "auroc"] == [2]
    assert report.failures == [
        "rsna-cls @1 seed 1 (backbone): run failed, no row (RuntimeError: CUDA error: an illegal memory access (simulated))"
    ]
    # every run failing: the gate names the expected entry that has no row at all
    monkeypatch.setattr(launch, "execute", lambda spec, threads=None: (_ for _ in ()).throw(RuntimeError("boom")))
    report = run_benchmark(suite, tmp_path / "out2", None, data_root)
    assert (
        "rsna-cls @1 auroc: expected, but no run of it recorded a row" in report.failures and len(report.failures) == 4
    )


@pytest.mark.slow
def test_the_ray_launcher_gives_the_sequential_rows(data_root, tmp_path):
    pytest.importorskip("ray")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray run (1 CPU) sets it: the same arithmetic
    try:
        sequential = run_suite(
            ["rsna-cls"], [0.5, 1.0], [0, 1], tmp_path / "seq", None, data_root, OPTIONS, 80, synthetic=True
        )
    finally:
        torch.set_num_threads(threads)
    on_ray = run_suite(
        ["rsna-cls"],
        [0.5, 1.0],
        [0, 1],
        tmp_path / "ray",
        None,
        data_root,
        OPTIONS,
        80,
        synthetic=True,
        launcher="ray",
        keep_going=True,
    )
    assert [launch.row_key(r) for r in on_ray] == [launch.row_key(r) for r in sequential]
    for a, b in zip(sequential, on_ray):
        assert b["status"] == "ok" and b["metrics"] == pytest.approx(a["metrics"], abs=1e-6)
    assert len(_ok_rows(tmp_path / "ray" / "results.jsonl")) == 4


def test_a_second_benchmark_into_the_same_out_is_refused_at_once(tmp_path, data_root, monkeypatch):
    from cmcgns.benchmark.run import BENCHMARK_LOCK
    from cmcgns.errors import ConfigError
    from cmcgns.io.folder_lock import FolderLock

    monkeypatch.setattr(launch, "execute", lambda spec, threads=None: pytest.fail("a run started"))
    suite = SuiteFile(tasks=["rsna-cls"], fractions=[1.0], seeds=[0], options=OPTIONS, synthetic=True)
    with FolderLock(tmp_path / "out", BENCHMARK_LOCK), pytest.raises(ConfigError, match=r"out: in use by pid \d+"):
        run_benchmark(suite, tmp_path / "out", None, data_root)
    assert not (tmp_path / "out" / "results.jsonl").exists()


def test_a_run_spec_survives_its_json_round_trip(tmp_path):
    spec = launch.RunSpec(
        "rsna-det", "rsna", "fast", {"iters": 4}, 0.1, 2, tmp_path / "m", "synthetic", "abc", tmp_path / "w",
        None, "random-init", None, "cpu", tmp_path / "like", {"torch": "2"}, "label",
    )  # fmt: skip
    assert launch.spec_from_json(launch.spec_to_json(spec)) == spec


@pytest.mark.slow
@pytest.mark.mm
def test_ray_runs_a_dense_task_under_torchrun_inside_its_task_and_the_others_in_one_process(data_root, tmp_path):
    pytest.importorskip("ray")
    options = {
        "rsna-det": {"protocol": "fast", "iters": 4, "batch_size": 4, "image_size": 32, "num_workers": 0},
        "rsna-cls": OPTIONS["rsna-cls"],
    }
    rows = run_suite(
        ["rsna-det", "rsna-cls"],
        [1.0],
        [0],
        tmp_path / "out",
        None,
        data_root,
        options,
        80,
        synthetic=True,
        launcher="ray",
        keep_going=True,
        ray_processes_per_run=2,
    )
    by_task = {r["task"]: r for r in rows}
    assert by_task["rsna-det"]["status"] == "ok", by_task["rsna-det"].get("error")
    assert by_task["rsna-det"]["world_size"] == 2 and by_task["rsna-cls"]["world_size"] == 1
    assert 0.0 <= by_task["rsna-det"]["metrics"]["map_40_75"] <= 1.0
    work = tmp_path / "out" / "work" / "rsna-det-f1.0-s0"
    assert (work / "torchrun.log").is_file() and launch.spec_from_json(
        (work / "spec.json").read_text()
    ).task == "rsna-det"
