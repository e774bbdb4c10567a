"""One writer per output folder: an exclusive advisory lock (flock) on a file inside the folder.

A second process on the same folder fails at once with one line naming the holder. The kernel
releases the lock when the holder exits, even after kill -9, so a stale lock never blocks a re-run.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
from pathlib import Path
from typing import Any

from cmcgns.errors import CmcgnsError


class FolderLock:
    """`with FolderLock(folder, ".lock", TrainingError, "give another run_dir"):` holds `folder/name`.

    `error` is the exception class raised when another process holds it, `hint` the end of its
    message (what the user can do instead of waiting)."""

    def __init__(
        self,
        folder: Path,
        name: str = ".lock",
        error: type[CmcgnsError] = CmcgnsError,
        hint: str = "give another folder",
    ) -> None:
        self.path = Path(folder) / name
        self.error, self.hint = error, hint
        self.handle: Any = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the lock's lifetime)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise self.error(f"{self.path.parent}: in use by {holder}; wait for it to finish or {self.hint}") from None
        handle.seek(0)
        handle.truncate()
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None
