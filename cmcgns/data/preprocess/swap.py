"""Replace a prepared folder's contents with a finished staging copy: only what preprocess wrote,
one writer at a time, recoverable after kill -9 at any point.

Layout inside OUT while a run works (all hidden):
- `.preprocess.lock`: the one-writer lock (FolderLock);
- `.preprocess-staging-PID/`: the new result, built in full before anything in OUT changes;
- `.preprocess-swap.json`: the journal, written (atomically) once staging is complete;
- `.preprocess-previous-PID/`: where the previous result's entries are moved before removal.

The swap moves the previous run's entries (those named in `.preprocess-written.json`, or the
known output names for folders written before that record) into the previous-folder, then the
staging entries into OUT, then removes the journal, the previous-folder and the staging folder.
Every step is a rename inside OUT and the journal records which phase is under way, so a run
killed at any point leaves a journal that the next run (or `verify`) finishes: the result is then
exactly the new one. Anything in OUT that preprocess did not write (a user's notes, a sub-folder of
their own) is never moved or deleted.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
from pathlib import Path

from cmcgns.errors import DataError
from cmcgns.io.atomic import write_json
from cmcgns.io.folder_lock import FolderLock

LOCK_NAME = ".preprocess.lock"
JOURNAL_NAME = ".preprocess-swap.json"
WRITTEN_NAME = ".preprocess-written.json"
STAGING_PREFIX = ".preprocess-staging-"
PREVIOUS_PREFIX = ".preprocess-previous-"
# what a preprocess run writes at the top of its folder (for folders without WRITTEN_NAME)
KNOWN_OUTPUTS = (
    "manifest.jsonl",
    "meta.json",
    "drop_report.json",
    "images",
    "masks",
    "splits",
    "eval_sets",
    "coco_*.json",
    "synthetic-key.json",
)
TOOL_ENTRIES = (LOCK_NAME, JOURNAL_NAME, WRITTEN_NAME)


def preprocess_lock(out: Path) -> FolderLock:
    return FolderLock(out, LOCK_NAME, DataError, "give another --out")


def is_tool_entry(name: str) -> bool:
    return name in TOOL_ENTRIES or name.startswith((STAGING_PREFIX, PREVIOUS_PREFIX))


def known_output(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in KNOWN_OUTPUTS)


def written_entries(out: Path) -> list[str]:
    """The top-level entries of `out` that the last preprocess run wrote."""
    record = out / WRITTEN_NAME
    if record.is_file():
        try:
            names = json.loads(record.read_text(encoding="utf-8"))
            if isinstance(names, list) and all(isinstance(n, str) and "/" not in n for n in names):
                return [n for n in names if (out / n).exists() or (out / n).is_symlink()]
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            pass  # a damaged record: fall back to the known names
    return sorted(p.name for p in out.iterdir() if known_output(p.name) and not is_tool_entry(p.name))


def foreign_entries(out: Path) -> list[str]:
    """Top-level entries of `out` that no preprocess run wrote (kept untouched by a re-run)."""
    if not out.is_dir():
        return []
    owned = set(written_entries(out))
    return sorted(p.name for p in out.iterdir() if p.name not in owned and not is_tool_entry(p.name))


def _move(src: Path, dst: Path) -> None:
    if src.exists() or src.is_symlink():  # absent: moved before an interruption
        src.rename(dst)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def finish_interrupted(out: Path) -> str | None:
    """Finish a swap that a killed run left (its journal), and remove staging/previous folders no
    live run owns (the caller holds the lock). Returns a line saying what was done, or None."""
    out = Path(out)
    said = None
    journal = out / JOURNAL_NAME
    if journal.is_file():
        try:
            state = json.loads(journal.read_text(encoding="utf-8"))
            staging, previous = out / state["staging"], out / state["previous"]
            old, new, phase = list(state["old"]), list(state["new"]), state["phase"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{journal}: damaged ({exc}); the new result is in {out}/{STAGING_PREFIX}*, the previous one "
                f"in {out}/{PREVIOUS_PREFIX}*: move the entries you want back by hand, then delete {journal}"
            ) from None
        if phase == "clearing":
            _clear(out, old, previous)
            state["phase"] = "filling"
            write_json(journal, state)
        _fill(out, new, staging)
        _commit(out, new, journal)
        said = f"{out}: finished the swap an interrupted preprocess run had started (the new result is in place)"
    for stale in out.glob(".preprocess-*-*"):  # staging or previous folders of killed runs
        if stale.name.startswith((STAGING_PREFIX, PREVIOUS_PREFIX)):
            _remove(stale)
    return said


def recover_legacy(out: Path) -> str | None:
    """Folders written before the in-place swap renamed OUT aside (`.OUT.previous-PID`): a run killed
    between the two renames left OUT missing. Put the previous copy back."""
    out = Path(out)
    if out.exists():
        return None
    previous = sorted(out.parent.glob(f".{out.name}.previous-*"))
    if not previous:
        return None
    previous[-1].rename(out)
    return f"{out}: restored from {previous[-1].name}, left by a preprocess run killed mid-swap"


def _clear(out: Path, old: list[str], previous: Path) -> None:
    previous.mkdir(exist_ok=True)
    for name in old:
        _move(out / name, previous / name)


def _fill(out: Path, new: list[str], staging: Path) -> None:
    for name in new:
        _move(staging / name, out / name)  # foreign names were refused before the swap


def _commit(out: Path, new: list[str], journal: Path) -> None:
    write_json(out / WRITTEN_NAME, sorted(new))
    state = json.loads(journal.read_text(encoding="utf-8"))
    journal.unlink()
    _remove(out / state["previous"])
    _remove(out / state["staging"])


def staging_folder(out: Path) -> Path:
    return Path(out) / f"{STAGING_PREFIX}{os.getpid()}"


def refuse_collisions(out: Path, staging: Path) -> None:
    """A result entry whose name a foreign entry of `out` already uses is refused before anything
    moves (that entry is the user's, not ours to replace); the staging copy is discarded."""
    clash = sorted({p.name for p in staging.iterdir()} & set(foreign_entries(out)))
    if clash:
        _remove(staging)
        raise DataError(
            f"{out / clash[0]}: was not written by preprocess, and the new result has an entry of that name; "
            "move it out of the folder and re-run (nothing was changed)"
        )


def swap_in(out: Path, staging: Path) -> None:
    """Replace what the last preprocess run wrote in `out` with the entries of `staging`."""
    refuse_collisions(out, staging)
    new = sorted(p.name for p in staging.iterdir())
    old = written_entries(out)
    journal = out / JOURNAL_NAME
    state = {
        "staging": staging.name,
        "previous": f"{PREVIOUS_PREFIX}{os.getpid()}",
        "old": old,
        "new": new,
        "phase": "clearing",
    }
    write_json(journal, state)
    _clear(out, old, out / state["previous"])
    state["phase"] = "filling"
    write_json(journal, state)
    _fill(out, new, staging)
    _commit(out, new, journal)
