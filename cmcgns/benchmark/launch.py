"""How a benchmark's runs are executed: one after another in this process (`sequential`, the
default, what CI uses) or as Ray tasks on a local instance or an existing cluster (`ray`).

Each (task, fraction, seed) run is a `RunSpec`; `execute` turns one into its results row wherever
it runs. Rows are appended to results.jsonl as each run finishes (one write per row); a restarted
sweep skips every run already recorded with the same key (task, fraction, seed, backbone hash,
task settings) unless told to rerun; a failed run is recorded with its error (status `failed`) and
the others go on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_SCHEMA_VERSION = 2
LAUNCHERS = ("sequential", "ray")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    task: str
    dataset: str
    protocol: str  # recorded in the row: the task's own when it offers none of the suite's
    options: dict[str, Any]
    fraction: float
    seed: int
    manifest: Path
    dataset_kind: str
    config_hash: str
    work: Path
    backbone_dir: Path | None
    weights: str
    model_hash: str | None
    device: str
    random_init_like: Path | None
    versions: dict[str, str]
    label: str = ""

    @property
    def key(self) -> tuple:
        return (self.task, float(self.fraction), int(self.seed), self.weights, self.config_hash)

    def describe(self) -> str:
        return f"{self.task} fraction {self.fraction:g} seed {self.seed}"


def row_key(row: dict) -> tuple:
    return (row["task"], float(row["fraction"]), int(row["seed"]), row["checkpoint_hash"], row["config_hash"])


def _base_row(spec: RunSpec) -> dict[str, Any]:
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "task": spec.task,
        "dataset": spec.dataset,
        "dataset_kind": spec.dataset_kind,
        "protocol": spec.protocol,
        "fraction": spec.fraction,
        "seed": spec.seed,
        "backbone": spec.weights,
        "config_hash": spec.config_hash,
        "checkpoint_hash": spec.weights,
        "model_hash": spec.model_hash,
        "versions": spec.versions,
    }


def execute(spec: RunSpec, threads: int | None = None) -> dict[str, Any]:
    """Run one spec and return its results row (raises what the task raises)."""
    from cmcgns import distributed
    from cmcgns.downstream.base import TaskRun
    from cmcgns.plugins.manager import get_registry

    if threads:
        import torch

        torch.set_num_threads(threads)
    task = get_registry().get("downstream_task", spec.task).build(dict(spec.options))
    start = time.perf_counter()
    metrics = task.run(
        TaskRun(
            spec.manifest,
            spec.backbone_dir,
            spec.fraction,
            spec.seed,
            spec.work,
            spec.device,
            random_init_like=spec.random_init_like,
        )
    )
    return {
        **_base_row(spec),
        "status": "ok",
        "image_size": int(metrics.get("image_size", getattr(task.options, "image_size", 64))),
        "selected_epoch": metrics.get("selected_epoch"),
        "metrics": metrics,
        "seconds": round(time.perf_counter() - start, 2),
        "world_size": distributed.world_size(),
        "time": dt.datetime.now(dt.UTC).isoformat(),
    }


PATH_FIELDS = ("manifest", "work", "backbone_dir", "random_init_like")


def spec_to_json(spec: RunSpec) -> str:
    fields = dataclasses.asdict(spec)
    for name in PATH_FIELDS:
        fields[name] = None if fields[name] is None else str(fields[name])
    return json.dumps(fields, sort_keys=True)


def spec_from_json(text: str) -> RunSpec:
    fields = json.loads(text)
    for name in PATH_FIELDS:
        fields[name] = None if fields[name] is None else Path(fields[name])
    return RunSpec(**fields)


def execute_with_torchrun(spec: RunSpec, processes: int, threads: int | None = None) -> dict[str, Any]:
    """Run one spec as `processes` torchrun workers on this node (one per GPU it was given, or CPU
    processes with gloo) and return rank 0's row: what a Ray task holding several GPUs runs for a
    dense task (`cmcgns.benchmark.spec_worker`). A failed launch raises with its last error line."""
    import subprocess

    spec.work.mkdir(parents=True, exist_ok=True)
    spec_file, row_file = spec.work / "spec.json", spec.work / "row.json"
    spec_file.write_text(spec_to_json(spec), encoding="utf-8")
    row_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command += ["-m", "cmcgns.benchmark.spec_worker", str(spec_file), str(row_file)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads or 1))
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    (spec.work / "torchrun.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0 or not row_file.is_file():
        errors = [line for line in proc.stderr.splitlines() if "Error" in line or "error:" in line]
        raise RuntimeError(
            f"torchrun with {processes} processes exited {proc.returncode}: "
            f"{(errors or proc.stderr.strip().splitlines() or ['no output'])[-1][:300]} (log: {spec.work / 'torchrun.log'})"
        )
    return json.loads(row_file.read_text(encoding="utf-8"))


def failed_row(spec: RunSpec, error: BaseException | str) -> dict[str, Any]:
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    first_line = (str(message).strip().splitlines() or [""])[0][:500]
    return {
        **_base_row(spec),
        "status": "failed",
        "error": first_line,
        "metrics": {},
        "time": dt.datetime.now(dt.UTC).isoformat(),
    }


def recorded_rows(path: Path) -> dict[tuple, dict]:
    """The successful rows already in results.jsonl by run key (a partly written last line, left by a
    killed sweep, is ignored: that run did not finish)."""
    found: dict[tuple, dict] = {}
    if not Path(path).is_file():
        return found
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            if row.get("status", "ok") == "ok" and "metrics" in row:
                found[row_key(row)] = row
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return found


def _line(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_sequential(
    specs: list[RunSpec],
    record: Callable[[dict], None],
    keep_going: bool,
    start_at: int = 0,
    planned: int | None = None,
) -> list[dict]:
    rows = []
    for i, spec in enumerate(specs, start=start_at + 1):
        label = f" {spec.label}" if spec.label else ""
        _line(f"benchmark{label} [{i}/{planned or len(specs)}] {spec.describe()}")
        try:
            row = execute(spec)
        except Exception as exc:
            if not keep_going:
                raise
            row = failed_row(spec, exc)
            _line(f"benchmark{label}: {spec.describe()} FAILED ({row['error']}); the other runs go on")
        record(row)
        rows.append(row)
    return rows


def run_on_ray(
    specs: list[RunSpec],
    record: Callable[[dict], None],
    address: str | None = None,
    cpus_per_run: int = 1,
    processes_per_run: int = 1,
    torchrun_tasks: set[str] = frozenset(),
    progress_every: float = 10.0,
) -> list[dict]:
    """Every spec as a Ray task (1 GPU per run on CUDA, `cpus_per_run` CPUs otherwise), on the cluster
    at `address` (or RAY_ADDRESS), else a local instance started here; rows recorded as runs finish.
    With `processes_per_run` > 1, a task in `torchrun_tasks` (detection, segmentation: those that shard
    their work) gets that many GPUs (CPUs x cpus_per_run on CPU) and runs torchrun inside its Ray task;
    the others keep one."""
    from cmcgns.errors import ConfigError

    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--launcher ray: Ray is not installed; pip install 'cmcgns[ray]' (the test command installs it)"
        ) from None
    address = address or os.environ.get("RAY_ADDRESS") or None
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
        if address is None:
            kwargs["num_cpus"] = os.cpu_count() or 1
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"--ray-address {address}: cannot connect to a Ray cluster ({exc})") from None
    try:
        gpu = any(s.device.startswith("cuda") for s in specs)
        remote = ray.remote(num_cpus=0 if gpu else cpus_per_run, num_gpus=1 if gpu else 0, max_retries=0)(execute)
        resources = ray.cluster_resources()
        slots = max(1, int(resources.get("GPU", 0)) if gpu else int(resources.get("CPU", 1)) // max(1, cpus_per_run))
        multi = ray.remote(max_retries=0)(execute_with_torchrun)
        pending = {}
        for spec in specs:
            if processes_per_run > 1 and spec.task in torchrun_tasks:
                need = (
                    {"num_gpus": processes_per_run, "num_cpus": 0}
                    if gpu
                    else {"num_cpus": processes_per_run * cpus_per_run}
                )
                pending[multi.options(**need).remote(spec, processes_per_run, cpus_per_run)] = spec
            else:
                pending[remote.remote(spec, cpus_per_run)] = spec
        rows, done, failed = [], 0, 0
        t0 = last = time.perf_counter()
        where = address or "a local Ray instance"
        each = f"{'1 GPU' if gpu else f'{cpus_per_run} CPU'} each"
        if processes_per_run > 1:
            each += f"; torchrun x {processes_per_run} for detection and segmentation"
        _line(f"benchmark: {len(specs)} runs on {where} ({slots} at a time, {each})")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=progress_every)
            for ref in ready:
                spec = pending.pop(ref)
                try:
                    row = ray.get(ref)
                    done += 1
                except Exception as exc:  # the task's own error, wrapped by Ray
                    cause = getattr(exc, "cause", None) or exc
                    row = failed_row(spec, cause)
                    failed += 1
                    _line(f"benchmark: {spec.describe()} FAILED ({row['error']}); the other runs go on")
                record(row)
                rows.append(row)
            now = time.perf_counter()
            if ready or now - last >= progress_every:
                running = min(len(pending), slots)
                _line(
                    f"benchmark: queued {len(pending) - running}, running {running}, done {done}, failed {failed}, "
                    f"elapsed {now - t0:.0f} s"
                )
                last = now
        return rows
    finally:
        if started_here:
            ray.shutdown()
