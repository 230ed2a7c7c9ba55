"""Channels that receive the same requests, simulated once (the per-channel front end).

Under the ``per_channel`` front end every channel of the DRAM kernel is independent: its own
queues, banks, refresh counters and request list, fed one request per cycle. Two channels whose
request lists are equal field by field (rank, bank, row, column, write, arrival cycle, and which
requests share an address) therefore issue the same commands at the same cycles. A sequential
stream over an interleaved mapping gives every channel the same list, one request longer on
some: 32 HBM channels form two or three groups. :func:`channel_groups` finds the groups;
:func:`sim.micro.dram_run.simulate` runs one channel of each and copies its statistics to the
others, which gives the full run's figures exactly (tests/test_dram_channels.py).
"""

from __future__ import annotations

import numpy as np


def _address_pattern(aid: np.ndarray) -> np.ndarray:
    """``aid`` relabelled by first appearance (0, 1, 2 ...): which requests share an address."""
    if len(aid) < 2 or bool(np.all(aid[1:] > aid[:-1])):   # rising: every address its own
        return np.arange(len(aid), dtype=np.int64)
    _, first, inverse = np.unique(aid, return_index=True, return_inverse=True)
    label = np.empty(len(first), np.int64)
    label[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
    return label[inverse.reshape(-1)]


def channel_groups(order: np.ndarray, start: np.ndarray, columns: tuple[np.ndarray, ...],
                   aid: np.ndarray) -> np.ndarray:
    """Each channel's group: the lowest channel whose request list equals its own.

    ``order`` lists the requests channel by channel (channel ``c``'s from ``start[c]`` to
    ``start[c + 1]``, in the order its front end takes them); ``columns`` are the per-request
    fields the kernel reads besides the channel (rank, bank, row, column, write, arrival);
    ``aid`` each request's address id."""
    channels = len(start) - 1
    first_of: dict[bytes, int] = {}
    group = np.empty(channels, np.int64)
    for c in range(channels):
        mine = order[start[c]:start[c + 1]]
        key = b"".join(np.ascontiguousarray(col[mine], np.int64).tobytes()
                       for col in columns) + _address_pattern(aid[mine]).tobytes()
        group[c] = first_of.setdefault(key, c)
    return group


def representatives(order: np.ndarray, start: np.ndarray, group: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reduced run's inputs: (its requests' indices in the full list, channel by channel,
    each representative in channel order; its front-end offsets; each full channel's index
    among the representatives)."""
    reps = np.flatnonzero(group == np.arange(len(group)))
    slot = np.searchsorted(reps, group)
    picked = [order[start[c]:start[c + 1]] for c in reps]
    offsets = np.concatenate(([0], np.cumsum([len(p) for p in picked]))).astype(np.int64)
    return np.concatenate(picked).astype(np.int64), offsets, slot
