"""Give freed heap memory back to the operating system.

Streaming a large split through a model allocates and frees tens of megabytes per batch (decoded
image batches, activations). glibc keeps freed blocks in its heap, and small long-lived
allocations between them fragment it, so the resident size of a long feature pass grew with the
number of images (benchmarks/downstream_memory.py: 1.5 GiB at 2,000 images, 2.2 GiB at 8,000,
4.9 GiB at 20,000; with large blocks forced to mmap it stayed at 0.9 GiB).

- `map_large_blocks` sets glibc's mmap threshold to a fixed 1 MiB, so every block of a megabyte
  or more (image batches, activations) is mapped on its own and unmapped when freed, instead of
  glibc raising the threshold after the first free and serving them from the heap;
- `release_free_heap` asks glibc to return every free heap page (malloc_trim(0)).

Both do nothing outside glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
LARGE_BLOCK = 1 << 20


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
    return libc


def map_large_blocks() -> bool:
    """True when glibc now maps every block of LARGE_BLOCK bytes or more on its own (process-wide;
    called by the streamed feature and prediction passes)."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_MMAP_THRESHOLD, LARGE_BLOCK) == 1)


def release_free_heap() -> bool:
    """True when the C library was asked to return its free heap pages."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


class PeriodicRelease:
    """Call `tick()` once per batch: every `every` batches the free heap pages are released."""

    def __init__(self, every: int = 20) -> None:
        self.every, self.count = every, 0

    def tick(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            release_free_heap()
