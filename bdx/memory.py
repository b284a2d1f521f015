"""Process-wide memory behaviour of the ``bdx`` command.

Inference allocates and frees many image-sized buffers (tens of MiB each, per tile). glibc's malloc returns
blocks that large to the system on every free and maps them again on the next allocation, so every tile pays
page faults on fresh memory: on this project's 2-thread CPU about 0.5 s of a 12 MP ``upscale-depth`` (4.6 s
without, 4.0 s with), and 8 % of the time at 100 MP (docs/benchmarks.md). :func:`retain_freed_memory` keeps
freed blocks in the process for reuse. The ``bdx`` command calls it at start-up; a program using the library
may call it too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

RETAINED_BYTES = 1 << 30  # blocks up to this size come from the heap, which keeps this much free memory for reuse
_M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
_M_MMAP_THRESHOLD = -3


def retain_freed_memory(limit: int = RETAINED_BYTES) -> bool:
    """Ask glibc's malloc to serve blocks up to ``limit`` bytes from its heap and keep up to ``limit`` bytes of
    freed memory there, instead of unmapping each large block when it is freed. Returns False where the C
    library is not glibc (nothing changes there).

    The peak memory of a run stays what it was plus what fragmentation holds back (measured at 100 MP:
    ``upscale-depth`` peaks at 1801 MiB instead of 1688).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, limit)) and bool(mallopt(_M_TRIM_THRESHOLD, limit))
