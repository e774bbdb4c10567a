"""Atomic checkpoints that load with torch.load(weights_only=True)."""

from __future__ import annotations

import re
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch

from cmcgns.errors import CmcgnsError
from cmcgns.io.atomic import atomic_open

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    path = checkpoint_path(run_dir, step)
    try:
        with atomic_open(path, "wb") as handle:
            torch.save(state, handle)
    except (OSError, RuntimeError) as exc:  # ENOSPC surfaces from torch.save as a RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[-1][:160]
        raise CmcgnsError(
            f"{path}: cannot write checkpoint ({reason}); free disk space or check permissions "
            f"(earlier checkpoints are kept)"
        ) from None
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def resolve_resume(run_dir: Path, resume: str | None) -> Path | None:
    if resume in (None, "", "none"):
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_file():
        raise CmcgnsError(f"{path}: checkpoint to resume from does not exist")
    return path


REQUIRED_KEYS = ("model", "optimizer", "scheduler", "scaler", "step", "rng")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, or one line saying why it is not one (unreadable, or missing keys)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CmcgnsError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CmcgnsError(f"{path}: not a cmcgns pretraining checkpoint (missing {', '.join(missing)})")
    return state


def load_latest_good(run_dir: Path, warn: Callable[[str], None]) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads, falling back over damaged ones with a warning each."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path)
        except CmcgnsError as exc:
            warn(f"warning: {exc}; trying the previous checkpoint")
    return None
