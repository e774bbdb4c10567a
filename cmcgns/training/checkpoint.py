"""Atomic checkpoints that load with torch.load(weights_only=True)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any

import torch

from cmcgns.errors import CmcgnsError
from cmcgns.io.atomic import atomic_open, write_text

CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def checksum_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".sha256")


class _HashingWriter:
    """A binary file handle that hashes what is written through it (torch.save writes sequentially)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.digest = handle, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def save_checkpoint(run_dir: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write step_N.pt atomically with its sha256 in step_N.pt.sha256 (written first, so a
    checkpoint in place always has its checksum), then prune: only checkpoints older than this one
    (the newest good one) are removed, keeping `keep` in all; newer files are never touched."""
    path = checkpoint_path(run_dir, step)
    try:
        with atomic_open(path, "wb") as handle:
            writer = _HashingWriter(handle)
            torch.save(state, writer)
            write_text(checksum_path(path), f"{writer.digest.hexdigest()}  {path.name}\n")
    except (OSError, RuntimeError) as exc:  # ENOSPC surfaces from torch.save as a RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).strip().splitlines()[-1][:160]
        raise CmcgnsError(
            f"{path}: cannot write checkpoint ({reason}); free disk space or check permissions "
            f"(earlier checkpoints are kept)"
        ) from None
    older = [p for p in list_checkpoints(run_dir) if _step_of(p) < step]
    for old in older[: max(0, len(older) - (keep - 1))]:
        old.unlink(missing_ok=True)
        checksum_path(old).unlink(missing_ok=True)
    return path


def _step_of(path: Path) -> int:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else -1


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
    if path.is_dir():
        found = list_checkpoints(path) or list_checkpoints(path.parent if path.name == CHECKPOINT_DIR else path)
        example = found[-1] if found else path / CHECKPOINT_DIR / "step_00000100.pt"
        raise CmcgnsError(
            f"--resume {path}: is a folder; give a checkpoint file (e.g. {example}), "
            "or --resume auto with that run_dir to take its newest good checkpoint"
        )
    if not path.is_file():
        raise CmcgnsError(f"{path}: checkpoint to resume from does not exist")
    return path


REQUIRED_KEYS = ("model", "optimizer", "scheduler", "scaler", "step", "rng")


def verify_checksum(path: Path) -> None:
    """A checkpoint whose bytes differ from the sha256 written with it is refused (one flipped byte
    loads without error otherwise). Checkpoints written before checksums existed pass unchecked."""
    recorded = checksum_path(path)
    if not recorded.is_file():
        return
    try:
        expected = recorded.read_text(encoding="utf-8", errors="replace").split()[:1]
    except OSError:
        return  # moved aside by the main rank meanwhile: the load below decides
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CmcgnsError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from None
    if expected != [digest.hexdigest()]:
        raise CmcgnsError(f"{path}: does not match its checksum {recorded.name} (damaged after it was written)")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's state, or one line saying why it is not one (unreadable, damaged, missing keys)."""
    verify_checksum(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CmcgnsError(f"{path}: cannot load checkpoint ({type(exc).__name__}: {exc})") from None
    missing = [k for k in REQUIRED_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CmcgnsError(f"{path}: not a cmcgns pretraining checkpoint (missing {', '.join(missing)})")
    return state


DAMAGED_SUFFIX = ".damaged"


def move_aside(path: Path) -> Path:
    """Rename a damaged checkpoint (and its checksum) to *.damaged: kept for inspection, never
    resumed from, never counted by pruning."""
    target = path.with_name(path.name + DAMAGED_SUFFIX)
    path.rename(target)
    if checksum_path(path).is_file():
        checksum_path(path).rename(checksum_path(target))
    return target


def load_latest_good(
    run_dir: Path, warn: Callable[[str], None], set_aside: bool = True
) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads and matches its checksum, falling back over damaged ones
    with a warning each; damaged ones are moved aside (`set_aside`: the main rank only). Raises when
    checkpoints exist but none is good (starting again silently would discard the run)."""
    found = list_checkpoints(run_dir)
    for path in reversed(found):
        try:
            return path, load_checkpoint(path)
        except CmcgnsError as exc:
            aside = move_aside(path) if set_aside else path
            warn(f"warning: {exc}; kept as {aside.name}, trying the previous checkpoint")
    if found:
        raise CmcgnsError(
            f"{Path(run_dir) / CHECKPOINT_DIR}: every checkpoint is damaged ({len(found)}, kept as *{DAMAGED_SUFFIX}); "
            "pass --overwrite to start the run again from step 1"
        )
    return None
