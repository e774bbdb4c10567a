"""Runs tasks x fractions x seeds and appends one JSON line per run."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
import time
import typing
from pathlib import Path
from typing import Any
from collections.abc import Callable

from cmcgns.data.bootstrap import SYNTHETIC_STAMP, ensure_synthetic
from cmcgns.data.manifest import is_prepared
from cmcgns.export import BackboneExport
from cmcgns.downstream.base import TaskRun
from cmcgns import distributed
from cmcgns.errors import ConfigError, DataError
from cmcgns.io.atomic import append_jsonl
from cmcgns.plugins.manager import get_registry

RESULTS_NAME = "results.jsonl"


def versions() -> dict[str, str]:
    from cmcgns.versions import package_versions

    return package_versions(("cmcgns", "torch", "timm", "transformers", "mmdet", "mmsegmentation", "mmengine", "mmcv"))


RESULTS_SCHEMA_VERSION = 2


def dataset_dir(
    dataset: str, data_root: Path, synthetic: bool, synthetic_studies: int | dict[str, int], image_size: int
) -> tuple[Path, str]:
    """(prepared folder, "real" | "synthetic"). Generated data is used only when asked for
    (`--synthetic`): a data root without the dataset is an error naming the missing folder."""
    prepared = Path(data_root) / dataset
    if is_prepared(prepared) and not (prepared / SYNTHETIC_STAMP).is_file():
        return prepared, "real"  # real (or user-provided) preprocessed data
    if not synthetic:
        raise DataError(
            f"{prepared}: no prepared {dataset} dataset; run `cmcgns preprocess {dataset} --source RAW --out {prepared}`, "
            f"or pass --synthetic to use generated data"
        )
    studies = (
        synthetic_studies.get(dataset, synthetic_studies["default"])
        if isinstance(synthetic_studies, dict)
        else synthetic_studies
    )
    return ensure_synthetic(dataset, Path(data_root), studies, 0, 2 * image_size, image_size), "synthetic"


def _check_torchrun_tasks(components: dict, options: dict | None) -> None:
    """Under torchrun only tasks that shard their work may run (every rank would otherwise repeat it)."""
    single = [
        name
        for name, component in components.items()
        if not getattr(component.build(dict((options or {}).get(name, {}))), "supports_torchrun", False)
    ]
    if single:
        raise ConfigError(
            f"{', '.join(single)}: these tasks run in one process; launch them without torchrun "
            "(detection and segmentation tasks run under torchrun)"
        )


def run_task(
    name: str,
    options: dict[str, Any] | None,
    fraction: float,
    seed: int,
    out_dir: Path,
    backbone_dir: Path | None,
    data_root: Path,
    synthetic_studies: int | dict[str, int] = 120,
    device: str = "cpu",
    synthetic: bool = False,
    protocol: str | None = None,
) -> dict:
    """One downstream run (`cmcgns finetune`): its results row, also appended to OUT/results.jsonl."""
    return run_suite(
        [name],
        [fraction],
        [seed],
        out_dir,
        backbone_dir,
        data_root,
        {name: dict(options or {})},
        synthetic_studies,
        device,
        synthetic=synthetic,
        protocol=protocol,
    )[0]


def run_suite(
    tasks: list[str],
    fractions: list[float],
    seeds: list[int],
    out_dir: Path,
    backbone_dir: Path | None,
    data_root: Path,
    task_options: dict[str, dict[str, Any]] | None = None,
    synthetic_studies: int | dict[str, int] = 120,
    device: str = "cpu",
    on_result: Callable[[dict], None] | None = None,
    synthetic: bool = False,
    protocol: str | None = None,
    label: str = "",
) -> list[dict]:
    """Every task x fraction x seed (`label` names the pass in the progress lines, e.g. a baseline); `protocol` (mgca | fast) applies to tasks that offer one and is
    recorded in each row (tasks without one run their only protocol, recorded as fast)."""
    out_dir, data_root = Path(out_dir).resolve(), Path(data_root).resolve()
    registry = get_registry()
    components = {name: registry.get("downstream_task", name) for name in tasks}  # fail fast on unknown names
    if distributed.world_size_from_env() > 1:
        _check_torchrun_tasks(components, task_options)
        distributed.init_from_env("nccl" if device.startswith("cuda") else "gloo")
    main = distributed.is_main()
    rows = []
    weights = BackboneExport.read(backbone_dir).weights_id if backbone_dir else "random-init"
    planned, done = len(components) * len(fractions) * len(seeds), 0
    installed = versions()  # the same for every row of this process
    for name, component in components.items():
        options = dict((task_options or {}).get(name, {}))
        field = component.options.model_fields.get("protocol")
        if protocol is not None and field is not None and protocol in typing.get_args(field.annotation):
            options.setdefault("protocol", protocol)  # tasks that lack this protocol run (and record) their own
        task = component.build(options)
        image_size = int(getattr(task.options, "image_size", 64))
        if not main:
            distributed.barrier()  # rank 0 generates missing synthetic data first
        manifest, kind = dataset_dir(task.dataset, data_root, synthetic, synthetic_studies, image_size)
        if main:
            distributed.barrier()
        config_hash = hashlib.sha256(
            json.dumps({"task": name, "options": task.options.model_dump(mode="json")}, sort_keys=True).encode()
        ).hexdigest()[:16]
        for fraction in fractions:
            for seed in seeds:
                done += 1
                if main:
                    print(
                        f"benchmark{' ' + label if label else ''} [{done}/{planned}] {name} fraction {fraction:g} seed {seed}",
                        file=sys.stderr,
                        flush=True,
                    )
                start = time.perf_counter()
                work = Path(out_dir) / "work" / f"{name}-f{fraction}-s{seed}"
                metrics = task.run(TaskRun(manifest, backbone_dir, fraction, seed, work, device))
                row = {
                    "schema_version": RESULTS_SCHEMA_VERSION,
                    "task": name,
                    "dataset": task.dataset,
                    "dataset_kind": kind,
                    "protocol": getattr(task.options, "protocol", "fast"),
                    "fraction": fraction,
                    "seed": seed,
                    "backbone": weights,
                    "image_size": int(metrics.get("image_size", image_size)),
                    "selected_epoch": metrics.get("selected_epoch"),
                    "metrics": metrics,
                    "config_hash": config_hash,
                    "checkpoint_hash": weights,
                    "versions": installed,
                    "seconds": round(time.perf_counter() - start, 2),
                    "world_size": distributed.world_size(),
                    "time": dt.datetime.now(dt.UTC).isoformat(),
                }
                rows.append(row)
                if main:  # every rank holds the same metrics; one writes them
                    append_jsonl(Path(out_dir) / RESULTS_NAME, row)
                    if on_result:
                        on_result(row)
    return rows
