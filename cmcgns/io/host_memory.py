"""Give freed heap memory back to the operating system.

Streaming a large split through a model allocates and frees tens of megabytes per batch (decoded
image batches, activations). glibc keeps freed blocks in its heap, and small long-lived
allocations between them fragment it, so the resident size of a long feature pass grew with the
number of images (benchmarks/downstream_memory.py: 1.5 GiB at 2,000 images, 2.2 GiB at 8,000,
4.9 GiB at 20,000; with large blocks forced to mmap it stayed at 0.9 GiB). `release_free_heap`
asks glibc to return every free page (malloc_trim(0)); elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap() -> bool:
    """True when the C library was asked to return its free heap pages."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class PeriodicRelease:
    """Call `tick()` once per batch: every `every` batches the free heap pages are released."""

    def __init__(self, every: int = 20) -> None:
        self.every, self.count = every, 0

    def tick(self) -> None:
        self.count += 1
        if self.count % self.every == 0:
            release_free_heap()
