"""Guards for a pretraining run folder: one process at a time, no silent overwrite of an earlier
run, resume only with the configuration the checkpoint was made with."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from cmcgns.errors import ConfigError, TrainingError
from cmcgns.io.folder_lock import FolderLock
from cmcgns.training import checkpoint as ckpt

LOCK_NAME = ".lock"
# outputs of a run; --overwrite removes them (and nothing else in the folder)
RUN_OUTPUTS = (
    ckpt.CHECKPOINT_DIR,
    "export",
    "model",
    "tensorboard",
    "metrics.csv",
    "summary.json",
    "config.resolved.yaml",
)
# fields a resume may change without --allow-config-change: they do not alter what is trained
SAFE_ON_RESUME = (
    "run_dir",
    "data.num_workers",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.tensorboard",
    "train.evaluate",
    "train.device",
    "train.threads",
)


class RunLock(FolderLock):
    """RUN/.lock: one pretraining process per run folder (see FolderLock)."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir, LOCK_NAME, TrainingError, "give another run_dir")


def prepare_new_run(run_dir: Path, resume: str | None, overwrite: bool) -> None:
    """A new run (no resume) into a folder that already holds checkpoints is refused unless
    `overwrite`, which removes the earlier run's outputs first (as open_clip refuses the same case)."""
    if resume not in (None, "", "none"):
        return
    existing = ckpt.list_checkpoints(run_dir)
    if existing and not overwrite:
        raise ConfigError(
            f"{run_dir}: holds checkpoints of an earlier run (latest {existing[-1].name}); "
            f"pass --resume auto to continue it or --overwrite to start again"
        )
    if overwrite:
        for name in RUN_OUTPUTS:
            target = Path(run_dir) / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def config_changes(stored_yaml: str, current_yaml: str) -> dict[str, tuple[Any, Any]]:
    """Dotted field -> (checkpoint's value, current value) for every field that differs."""
    before, after = _flatten(yaml.safe_load(stored_yaml) or {}), _flatten(yaml.safe_load(current_yaml) or {})
    return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def check_resume_config(checkpoint: Path, stored_yaml: str | None, current_yaml: str, allow_changes: bool) -> list[str]:
    """Refuse a resume whose config differs from the checkpoint's beyond SAFE_ON_RESUME (unless
    `allow_changes`); returns the changes that were accepted, as printable lines."""
    if stored_yaml is None:
        return []
    changes = config_changes(stored_yaml, current_yaml)
    unsafe = {k: v for k, v in changes.items() if not any(k == s or k.startswith(s + ".") for s in SAFE_ON_RESUME)}
    if unsafe and not allow_changes:
        listed = "; ".join(f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in unsafe.items())
        raise ConfigError(
            f"{checkpoint}: was made with a different config ({listed}); resume with the same config, "
            f"or pass --allow-config-change to continue with the new values"
        )
    return [f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in changes.items()]
