"""Ops grouped by stream in one compiled pass (:func:`sim.stream_order.stream_layout`)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def stream_layout(stream, bounds, by_stream, prev, after, position):
    """Fill, for ops with stream codes ``stream`` (``0..len(bounds)-2``): ``bounds`` (where
    each stream's ops begin in ``by_stream``, and the op count last), ``by_stream`` (op ids
    by stream, each stream's in id order: a counting sort, stable), each op's ``prev`` and
    ``after`` on its stream (-1: none) and its ``position`` there (not where ``position`` is
    empty). A code outside that range raises ``ValueError``."""
    n_streams = len(bounds) - 1
    bounds[:] = 0
    for i in range(len(stream)):
        c = stream[i]
        if c < 0 or c >= n_streams:   # (unchecked, it would write outside the arrays)
            raise ValueError("stream_layout: a stream code outside 0..len(bounds)-2")
        bounds[c + 1] += 1
    for c in range(n_streams):
        bounds[c + 1] += bounds[c]
    fill = bounds[:-1].copy()
    last = np.full(n_streams, -1, dtype=np.int64)
    for i in range(len(stream)):
        c = stream[i]
        p = fill[c]
        by_stream[p] = i
        if len(position):
            position[i] = p - bounds[c]
        fill[c] = p + 1
        j = last[c]
        prev[i] = j
        if j >= 0:
            after[j] = i
        last[c] = i
    for c in range(n_streams):
        if last[c] >= 0:
            after[last[c]] = -1


@njit(cache=True, error_model="numpy")
def stream_positions(by_stream, bounds, position):
    """Fill each op's ``position`` on its stream from the ops by stream (``by_stream``, each
    stream's from ``bounds[s]``)."""
    for s in range(len(bounds) - 1):
        for q in range(bounds[s], bounds[s + 1]):
            position[by_stream[q]] = q - bounds[s]
