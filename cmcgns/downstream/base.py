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
