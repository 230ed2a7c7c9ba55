"""Ragged rows (a CSR table's) gathered as arrays."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import numpy as np


def slice_indices(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices of the slices ``[starts[j], starts[j] + counts[j])``, one after the other
    (int64): ragged rows of a flat array (a CSR table's) gathered in one step."""
    counts = np.asarray(counts, dtype=np.int64)
    before = np.cumsum(counts) - counts          # where each slice goes in the output
    total = int(before[-1] + counts[-1]) if len(counts) else 0
    return np.repeat(np.asarray(starts, dtype=np.int64) - before, counts) + \
        np.arange(total, dtype=np.int64)


def int_rows(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(each row's length, the rows' ints one after the other; both int64) of ragged rows of
    Python ints (tuples, lists): two passes in C, no array per row."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    flat = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
    return lengths, flat


def ordered_sums(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per owner ``0..n-1``, its ``values`` added left to right from 0.0 (as Python's ``+=``
    or ``sum`` adds them, one float rounding per term in order); ``owner`` ascending (an
    owner's values together, in order). One pass per place within an owner."""
    total = np.zeros(n)
    if not len(owner):
        return total
    first = np.flatnonzero(np.concatenate(([True], owner[1:] != owner[:-1])))
    place = np.arange(len(owner)) - np.repeat(first, np.diff(np.append(first, len(owner))))
    for j in range(int(place.max()) + 1):
        sel = place == j
        total[owner[sel]] = total[owner[sel]] + values[sel]
    return total


def sum_in_order(start: float, values) -> float:
    """``start`` plus ``values`` added one at a time, left to right (a running sum: the float
    a ``+=`` loop gives, not numpy's pairwise ``sum``)."""
    return float(np.add.accumulate(np.concatenate(([start], np.asarray(values, float))))[-1])
