"""How the CLI process allocates: freed memory kept for the next arrays (glibc's ``mallopt``),
and numpy's arrays on ordinary pages.

A several-stream run of a 70B model over 2,048 tokens makes and drops hundreds of arrays of
one value per op (40 MB each at 5 M ops). glibc serves a block over ``M_MMAP_THRESHOLD``
(128 KiB, raised on each free up to 32 MiB) with a fresh ``mmap`` and returns it on ``free``,
so each such array is zero-filled by the kernel page by page again: ~195,000 page faults and
1.2-3.4 s of system time in that run on a 2-core VM (issue 18). Serving blocks up to
:data:`MMAP_THRESHOLD` from the heap and not trimming it reuses the pages: ~79,000 faults,
0.6 s. Peak resident memory grows by the fragmentation (1.37 -> 1.57 GB there).

numpy asks the kernel for transparent huge pages on every array of 4 MiB or more
(``madvise``). Where the kernel defragments on such faults (``defrag`` = ``madvise``, a common
default) each 2 MiB fault may stall on compaction: the same run spent 1.3-1.5 s of system time
with them and 0.8 s without (372,649 small faults instead of 60,934), at equal user time; the
one-stream 2,048-token 70B run 0.48-0.70 s against 0.34-0.37 s. ``NUMPY_MADVISE_HUGEPAGE=0`` is
set unless the user set it (numpy reads it when it loads).

Only the command-line process does this (a library does not set its host's allocator; a
script or notebook calls :func:`tune_allocation` itself, before it imports numpy); on
a C library without ``mallopt`` (musl, macOS) or with ``XPUSIM_KEEP_FREED=0`` the allocator is
left as it is.
"""

from __future__ import annotations

import os

#: ``mallopt`` parameters (glibc malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
#: blocks up to this size come from the heap (B)
MMAP_THRESHOLD = 256 << 20
#: free memory at the heap's top kept before trimming (B)
TRIM_THRESHOLD = (1 << 31) - 1
#: extra heap asked for at each growth (B)
TOP_PAD = 16 << 20


def tune_allocation() -> None:
    """Before numpy loads: ordinary pages for its arrays unless the user chose, and glibc's
    freed memory kept (module docstring)."""
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    keep_freed_memory()


def keep_freed_memory() -> bool:
    """Set glibc's allocator to reuse freed blocks (module docstring). Whether it was set."""
    if os.environ.get("XPUSIM_KEEP_FREED", "1") == "0":
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD)))
