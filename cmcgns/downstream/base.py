"""Downstream task interface shared by classification, detection and segmentation plugins."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmcgns.errors import DataError
from cmcgns.export import BackboneExport


@dataclasses.dataclass
class TaskRun:
    manifest_dir: Path  # preprocessed dataset folder
    backbone_dir: Path | None  # a pretrain run's export/ folder (None = random init)
    fraction: float
    seed: int
    work_dir: Path
    device: str = "cpu"
    # with backbone_dir None: the pretrained model whose architecture a random-init baseline copies
    # (tasks that need more than the image backbone, e.g. zero-shot); None = the task's own default
    random_init_like: Path | None = None


class DownstreamTask(Protocol):
    name: str
    dataset: str
    metrics: tuple[str, ...]

    def run(self, run: TaskRun) -> dict[str, float]: ...


def backbone_spec(
    backbone_dir: Path | None, default_name: str, default_size: int, size_given: bool = False
) -> BackboneExport:
    """The export in `backbone_dir` (at its own image size, or at the task's `image_size` when the
    user set it: a ViT's position embedding is then interpolated, and the run says so), or a
    random-init description of the task's default network."""
    if backbone_dir is None:
        return BackboneExport.random_init(default_name, default_size)
    export = BackboneExport.read(backbone_dir)
    if size_given and default_size != export.image_size:
        export = dataclasses.replace(export, image_size=default_size)
    return export


def fraction_subset(rows: list[dict], fraction: float, seed: int, label_key: str | None = None) -> list[dict]:
    """Deterministic label-fraction subset of training rows (at least 2 rows; stratified by the
    first label when given, so both classes survive small fractions where possible)."""
    if not 0 < fraction <= 1:
        raise DataError(f"fraction {fraction} must be in (0, 1]")
    if fraction == 1:
        return list(rows)
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["labels"].get(label_key) if label_key else None, []).append(r)
    chosen = []
    for _, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        k = max(1, int(round(fraction * len(members))))
        chosen += [members[i] for i in sorted(rng.choice(len(members), size=k, replace=False))]
    return chosen if len(chosen) >= 2 else list(rows[:2])


SUBSET_IDS_NAME = "subset_ids.txt"


def subset_file_name(task: str, fraction: float, seed: int) -> str:
    return f"{task}-f{fraction:g}-s{seed}.txt"


def benchx_subset_name(fraction: float) -> str:
    """BenchX's published name for a label-fraction list (one list for every seed): train_1.txt for
    1 %, train_10.txt for 10 %, train.txt for all of the training split."""
    return "train.txt" if fraction >= 1.0 else f"train_{fraction * 100:g}.txt"


def subset_list_path(folder: Path, task: str, fraction: float, seed: int) -> Path:
    """Ours (`<task>-f<fraction>-s<seed>.txt`) when present, else BenchX's name (the same list for
    every seed, as BenchX publishes it); the first name when neither exists."""
    ours, theirs = Path(folder) / subset_file_name(task, fraction, seed), Path(folder) / benchx_subset_name(fraction)
    return theirs if not ours.is_file() and theirs.is_file() else ours


def training_subset(
    rows: list[dict], run: TaskRun, task: str, subset_lists: Path | None, label_key: str | None = None
) -> tuple[list[dict], int]:
    """The label-fraction subset a run trains on: drawn (`fraction_subset`) or, with `subset_lists`
    (a folder of `<task>-f<fraction>-s<seed>.txt` id files, e.g. another lab's or a benchmark's
    `work/*/subset_ids.txt` renamed, or BenchX's `train_1.txt` / `train_10.txt`), the listed training rows. Listed ids absent from the training
    rows are counted (returned, and one line on stderr naming the first), never silently dropped.
    The ids used are written to WORK_DIR/subset_ids.txt so the subset can be shared."""
    import sys

    from cmcgns.io.atomic import write_text

    missing: list[str] = []
    if subset_lists is None:
        chosen = fraction_subset(rows, run.fraction, run.seed, label_key)
    else:
        path = subset_list_path(Path(subset_lists), task, run.fraction, run.seed)
        if not path.is_file():
            raise DataError(
                f"{path}: no subset list for {task} at fraction {run.fraction:g}, seed {run.seed} "
                f"(nor BenchX's {benchx_subset_name(run.fraction)})"
            )
        wanted = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        by_id = {str(r["id"]): r for r in rows}
        chosen = [by_id[i] for i in wanted if i in by_id]
        missing = [i for i in wanted if i not in by_id]
        if not chosen:
            raise DataError(f"{path}: none of its {len(wanted)} ids is a training row of {run.manifest_dir}")
        if missing:
            print(
                f"{path}: {len(missing)} listed id(s) are not training rows here, e.g. {', '.join(missing[:3])}",
                file=sys.stderr,
                flush=True,
            )
    write_text(Path(run.work_dir) / SUBSET_IDS_NAME, "".join(f"{r['id']}\n" for r in chosen))
    return chosen, len(missing)
