"""Large zeroed arrays on pages the kernel maps on first touch, whatever the allocator does.

The CLI serves blocks up to 256 MiB from malloc's heap (``xpusim/heap.py``: reused pages
instead of fresh ``mmap`` calls for a long run's per-op arrays). There ``np.zeros`` of a block
is a ``calloc`` that writes every byte, where a fresh mapping is zero without a write and
faults in only what is touched. A flash drive's page tables (one entry per logical page,
~60 MB each for an InstInfer drive) are touched sparsely: zero-filling four of them per flash
run cost an ``xpusim run --fidelity cycle`` of OPT-6.7B on ``instinfer-csd`` 5.3 of its 6.8 s.
:func:`sparse_zeros` maps such arrays directly (an anonymous ``mmap``, unmapped when the array
is dropped).
"""

from __future__ import annotations

import mmap

import numpy as np

#: arrays from this size (B) get their own mapping; smaller ones come from ``np.zeros``
MAP_FROM = 1 << 20


def sparse_zeros(n: int, dtype) -> np.ndarray:
    """A writable, C-contiguous array of ``n`` zeros of ``dtype``; of :data:`MAP_FROM` bytes
    or more on its own anonymous mapping, whose pages exist only once written."""
    dtype = np.dtype(dtype)
    nbytes = int(n) * dtype.itemsize
    if nbytes < MAP_FROM:
        return np.zeros(n, dtype)
    return np.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype, count=int(n))
