"""Faults injected by tests into spawned worker processes (importable by a spawn child)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Any


def die_in_worker(*args: Any, **kwargs: Any) -> None:  # noqa: ARG001 (any signature)
    """Kill the calling process as kill -9 would, but only in a child: a test that reaches it in
    its own process (a single-worker path) must not kill the test runner."""
    if multiprocessing.parent_process() is None:
        raise RuntimeError("die_in_worker called outside a worker process")
    os.kill(os.getpid(), signal.SIGKILL)
