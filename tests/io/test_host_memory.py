import sys

import pytest

from cmcgns.io.host_memory import PeriodicRelease


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_blocks_kept_by_a_fragmented_heap_go_back_to_the_system():
    import subprocess

    # in a child: malloc settings are process-wide, and a test that ran before in this process (a
    # downstream task fixes the mmap threshold) changes what the heap keeps. 100 KiB blocks stay below
    # glibc's mmap threshold (heap), each followed by a small survivor that pins the heap above it:
    # freeing the blocks frees nothing for the OS until the trim
    script = """
from cmcgns.io.host_memory import release_free_heap
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
blocks, survivors = [], []
for _ in range(2000):
    blocks.append(bytearray(100 * 1024)); survivors.append(bytearray(64))
del blocks
before = rss()
assert release_free_heap()
print(before - rss(), len(survivors))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    released, survivors = out.stdout.split()
    assert float(released) > 60, released  # about 195 MiB were free, most of it still resident
    assert int(survivors) == 2000


def test_periodic_release_counts_batches(monkeypatch):
    calls = []
    monkeypatch.setattr("cmcgns.io.host_memory.release_free_heap", lambda: calls.append(1) or True)
    release = PeriodicRelease(every=3)
    for _ in range(7):
        release.tick()
    assert len(calls) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_with_large_blocks_mapped_a_freed_batch_leaves_the_process_at_once():
    import subprocess

    # in a child: the threshold is process-wide. 2 MiB blocks, freed after a first free (which
    # would raise glibc's dynamic threshold and keep them in the heap) with small survivors between
    script = """
import sys
from cmcgns.io.host_memory import map_large_blocks
def rss(): return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20
if sys.argv[1] == 'mapped': assert map_large_blocks()
first = bytearray(2 << 20); del first
blocks, survivors = [], []
for _ in range(100):
    blocks.append(bytearray(2 << 20)); survivors.append(bytearray(64))
before = rss(); del blocks
print(before - rss())
"""
    freed = {}
    for mode in ("mapped", "default"):
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True)
        freed[mode] = float(out.stdout.strip())
    assert freed["mapped"] > 150 and freed["default"] < 50, freed  # 200 MiB were freed
