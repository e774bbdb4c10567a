"""Work spread over spawned processes, in order, failing fast when a worker dies.

`multiprocessing.Pool` waits forever for the results of a worker that was killed (kill -9, the
kernel's out-of-memory killer); `concurrent.futures.ProcessPoolExecutor` notices and raises
BrokenProcessPool, which becomes one line here.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cmcgns.errors import DataError


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int, chunksize: int, what: str) -> Iterator:
    """Yield fn(item) for every item, in order, from `workers` spawned processes. A worker that dies
    fails the whole map at once: DataError naming `what` (e.g. "preprocess covidx: resizing images")."""
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(fn, items, chunksize=chunksize)
    except concurrent.futures.process.BrokenProcessPool:
        raise DataError(
            f"{what}: a worker process died (killed, or out of memory); nothing of this run was kept: "
            "re-run, with fewer --workers if memory is short"
        ) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
