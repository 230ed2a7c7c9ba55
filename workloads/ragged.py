"""Ragged rows (a CSR table's) gathered as arrays."""

from __future__ import annotations

import numpy as np


def slice_indices(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices of the slices ``[starts[j], starts[j] + counts[j])``, one after the other
    (int64): ragged rows of a flat array (a CSR table's) gathered in one step."""
    counts = np.asarray(counts, dtype=np.int64)
    before = np.cumsum(counts) - counts          # where each slice goes in the output
    total = int(before[-1] + counts[-1]) if len(counts) else 0
    return np.repeat(np.asarray(starts, dtype=np.int64) - before, counts) + \
        np.arange(total, dtype=np.int64)
