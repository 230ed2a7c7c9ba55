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


class RaggedInts(Sequence):
    """Ragged rows of ints held as (each row's length, the ints one after the other; int64
    arrays), read as a sequence of tuples (each made when read); :func:`int_rows` gives the
    arrays back as they are. Equal to any sequence of the same tuples."""

    __slots__ = ("lengths", "flat", "_starts")

    def __init__(self, lengths: np.ndarray, flat: np.ndarray):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.flat = np.asarray(flat, dtype=np.int64)
        self._starts = np.cumsum(self.lengths) - self.lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a = int(self._starts[i])
        return tuple(self.flat[a:a + int(self.lengths[i])].tolist())

    def __iter__(self):
        ints = self.flat.tolist()
        for a, n in zip(self._starts.tolist(), self.lengths.tolist(), strict=True):
            yield tuple(ints[a:a + n])

    def __eq__(self, other) -> bool:
        if isinstance(other, RaggedInts):
            return np.array_equal(self.lengths, other.lengths) and \
                np.array_equal(self.flat, other.flat)
        if isinstance(other, (list, tuple)):
            return len(other) == len(self) and all(
                tuple(o) == r for o, r in zip(other, self, strict=True))
        return NotImplemented

    __hash__ = None   # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RaggedInts({list(self)!r})"


def int_rows(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(each row's length, the rows' ints one after the other; both int64) of ragged rows of
    Python ints (tuples, lists): two passes in C, no array per row; a :class:`RaggedInts`'
    own arrays."""
    if isinstance(rows, RaggedInts):
        return rows.lengths, rows.flat
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
