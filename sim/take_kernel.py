"""Rows of several per-kind columns gathered at once (numba).

A long op table's per-kind columns (FLOPs, bytes, times alone, energies) are ``values[by]``,
one value per op kind read through each op's kind code. The report writes them a row group at
a time (:func:`sim.report.writer._write_chunked`); ``np.take`` per column reads the group's
codes once per column, each cast to 64 bits first. :func:`take_rows` reads them once for all
the columns that share them (the same values). :func:`take_codes` does the same for one
text column's codes through its label lookup table (a 2**20-row group's in ~0.5 instead of
~1.1 ms: no 64-bit copy of the codes first).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, error_model="numpy")
def take_rows(values, by, lo, out):
    """``out[j, i] = values[j, by[lo + i]]`` for every column ``j`` of ``values`` (one row per
    column, one entry per code) and row ``i < out.shape[1]``: ``np.take(values[j],
    by[lo:lo + out.shape[1]])`` per column, in one pass over the codes."""
    k = values.shape[0]
    for i in range(out.shape[1]):
        c = by[lo + i]
        for j in range(k):
            out[j, i] = values[j, c]


@njit(cache=True, error_model="numpy")
def take_codes(lut, by, lo, out):
    """``out[i] = lut[by[lo + i]]`` for ``i < len(out)``: ``np.take(lut, by[lo:lo +
    len(out)])``."""
    for i in range(len(out)):
        out[i] = lut[by[lo + i]]
