"""Runs tasks x fractions x seeds and appends one JSON line per run."""

from __future__ import annotations

import hashlib
import json
import sys
import typing
from pathlib import Path
from typing import Any
from collections.abc import Callable

from cmcgns.data.bootstrap import SYNTHETIC_STAMP, ensure_synthetic, synthetic_kind
from cmcgns.data.manifest import is_prepared
from cmcgns.export import BackboneExport
from cmcgns import distributed
from cmcgns.errors import ConfigError, DataError
from cmcgns.io.atomic import append_jsonl
from cmcgns.plugins.manager import get_registry

RESULTS_NAME = "results.jsonl"


def versions() -> dict[str, str]:
    from cmcgns.versions import package_versions

    return package_versions(("cmcgns", "torch", "timm", "transformers", "mmdet", "mmsegmentation", "mmengine", "mmcv"))


def dataset_dir(
    dataset: str, data_root: Path, synthetic: bool, synthetic_studies: int | dict[str, int], image_size: int
) -> tuple[Path, str]:
    """(prepared folder, "real" | "synthetic" | another generated kind, e.g. Open-i's "synthetic
    images, real Open-i reports"). Generated data is used only when asked for
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
    folder = ensure_synthetic(dataset, Path(data_root), studies, 0, 2 * image_size, image_size)
    return folder, synthetic_kind(folder)


def torchrun_tasks(built: dict[str, Any]) -> set[str]:
    """The built tasks that shard their work over torchrun processes (detection, segmentation)."""
    return {name for name, task in built.items() if getattr(task, "supports_torchrun", False)}


def _refuse_single_process_tasks(built: dict[str, Any]) -> None:
    """Under torchrun only tasks that shard their work may run (every rank would otherwise repeat it)."""
    single = [name for name in built if name not in torchrun_tasks(built)]
    if single:
        raise ConfigError(
            f"{', '.join(single)}: these tasks run in one process; launch them without torchrun "
            "(detection and segmentation tasks run under torchrun)"
        )


def _task_options(component, task_options: dict | None, name: str, protocol: str | None) -> dict[str, Any]:
    options = dict((task_options or {}).get(name, {}))
    field = component.options.model_fields.get("protocol") if component.options else None
    if protocol is not None and field is not None and protocol in typing.get_args(field.annotation):
        options.setdefault("protocol", protocol)  # tasks that lack this protocol run (and record) their own
    return options


def plan(task, fractions: list[float], seeds: list[int]) -> list[tuple[float, int]]:
    """The (fraction, seed) runs of a task: every pair, or one run for tasks that train nothing."""
    if not getattr(task, "sweeps", True):
        return [(1.0, seeds[0])]
    return [(fraction, seed) for fraction in fractions for seed in seeds]


def weights_ids(backbone_dir: Path | None) -> tuple[str, str | None]:
    """(backbone weights id, whole-model weights id or None) of a `--backbone` folder: RUN/export
    (RUN/model beside it when present) or RUN/model."""
    from cmcgns.joint.export import DIR_NAME, MANIFEST_FILE, ModelFolder

    if backbone_dir is None:
        return "random-init", "random-init"
    backbone_dir = Path(backbone_dir)
    joint = next((d for d in (backbone_dir, backbone_dir.parent / DIR_NAME) if (d / MANIFEST_FILE).is_file()), None)
    model_hash = ModelFolder.read(joint).weights_id if joint is not None else None
    if (backbone_dir / "backbone.json").is_file() or model_hash is None:
        return BackboneExport.read(backbone_dir).weights_id, model_hash
    return model_hash, model_hash


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


def task_components(tasks: list[str]) -> dict[str, Any]:
    registry = get_registry()
    return {name: registry.get("downstream_task", name) for name in tasks}


def build_tasks(components: dict[str, Any], task_options: dict | None, protocol: str | None) -> dict[str, Any]:
    """Every task built from its options (validated): a bad option of any task is refused before
    the first run starts, not after the tasks before it have run."""
    return {
        name: component.build(_task_options(component, task_options, name, protocol))
        for name, component in components.items()
    }


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
    random_init_like: Path | None = None,
    launcher: str = "sequential",
    rerun: bool = False,
    keep_going: bool = False,
    ray_address: str | None = None,
    ray_cpus_per_run: int = 1,
    ray_processes_per_run: int = 1,
) -> list[dict]:
    """Every task x fraction x seed (tasks with `sweeps = False`, which train nothing, once at
    fraction 1 with the first seed); `label` names the pass in the progress lines, e.g. a baseline;
    `protocol` (mgca | fast) applies to tasks that offer one and is recorded in each row (tasks
    without one run their only protocol, recorded as fast).

    Runs already recorded in OUT/results.jsonl with the same key are skipped (their rows returned)
    unless `rerun`; `launcher` is `sequential` (this process) or `ray` (`cmcgns.benchmark.launch`);
    with `keep_going` a failed run is recorded (status failed) and the others go on, else it raises."""
    from cmcgns.benchmark.launch import LAUNCHERS, RunSpec, recorded_rows, row_key, run_on_ray, run_sequential

    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {launcher!r}: choose one of {', '.join(LAUNCHERS)}")
    out_dir, data_root = Path(out_dir).resolve(), Path(data_root).resolve()
    built = build_tasks(task_components(tasks), task_options, protocol)  # fails fast on unknown names
    if distributed.world_size_from_env() > 1:
        if launcher != "sequential":
            raise ConfigError("--launcher ray runs each run as its own Ray task; launch it without torchrun")
        _refuse_single_process_tasks(built)
        distributed.init_from_env("nccl" if device.startswith("cuda") else "gloo")
    main = distributed.is_main()
    weights, model_hash = weights_ids(backbone_dir)
    installed = versions()  # the same for every row of this process
    specs: list[RunSpec] = []
    for name, task in built.items():
        image_size = int(getattr(task.options, "image_size", 64))
        if not main:
            distributed.barrier()  # rank 0 generates missing synthetic data first
        manifest, kind = dataset_dir(task.dataset, data_root, synthetic, synthetic_studies, image_size)
        if main:
            distributed.barrier()
        options = task.options.model_dump(mode="json")
        config_hash = hashlib.sha256(
            json.dumps({"task": name, "options": options}, sort_keys=True).encode()
        ).hexdigest()[:16]
        for fraction, seed in plan(task, fractions, seeds):
            specs.append(
                RunSpec(
                    name,
                    task.dataset,
                    str(getattr(task.options, "protocol", "fast")),
                    options,
                    fraction,
                    seed,
                    manifest,
                    kind,
                    config_hash,
                    out_dir / "work" / f"{name}-f{fraction}-s{seed}",
                    backbone_dir,
                    weights,
                    model_hash,
                    device,
                    random_init_like,
                    installed,
                    label,
                )
            )
    results = out_dir / RESULTS_NAME
    recorded = {} if rerun else recorded_rows(results)
    kept = {spec.key: recorded[spec.key] for spec in specs if spec.key in recorded}
    todo = [spec for spec in specs if spec.key not in kept]
    if kept and main:
        print(
            f"benchmark{' ' + label if label else ''}: {len(kept)} of {len(specs)} runs already recorded in "
            f"{results} with this backbone and these settings, skipped (--rerun runs them again)",
            file=sys.stderr,
            flush=True,
        )

    def record(row: dict) -> None:
        if main:  # every rank holds the same metrics; one writes them
            append_jsonl(results, row)
            if on_result and row.get("status", "ok") == "ok":
                on_result(row)

    if launcher == "ray" and todo:
        new = run_on_ray(
            todo, record, ray_address, ray_cpus_per_run, ray_processes_per_run, torchrun_tasks=torchrun_tasks(built)
        )
    else:
        new = run_sequential(todo, record, keep_going, start_at=len(kept), planned=len(specs))
    by_key = {**kept, **{row_key(row): row for row in new}}
    return [by_key[spec.key] for spec in specs if spec.key in by_key]
