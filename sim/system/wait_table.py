"""The transfers each op waits for (``Plan.extra_deps``), held as blocks of pairs until read op
by op.

A planner that makes many waits at once (a stage's fetches, hosted ops' activations) appends
them as one block of (waiter, waited) pairs (:meth:`WaitTable.add_pairs`, no Python per op);
an op-by-op planner assigns rows as in a dict. The compiled pass reads every op's waits flat
(:meth:`WaitTable.flat`: one stable sort of the pairs); anything that reads the table as a
mapping (the SimPy engine, tests) first has the pending blocks settled into rows, in the order
they were added, as :func:`sim.system.plan.add_waits` appends them.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import numpy as np

from workloads.ragged import int_rows, slice_indices


class WaitTable(MutableMapping):
    """op id -> the ids of the transfers it waits for (a tuple, in the order added)."""

    __slots__ = ("_rows", "_blocks")

    def __init__(self, rows: dict[int, tuple[int, ...]] | None = None):
        self._rows: dict[int, tuple[int, ...]] = dict(rows or {})
        self._blocks: list[tuple[np.ndarray, np.ndarray]] = []

    @classmethod
    def of_pairs(cls, waiter: np.ndarray, waited: np.ndarray) -> WaitTable:
        """A table of the pairs (op ``waiter[j]`` waits for ``waited[j]``) alone."""
        table = cls()
        table.add_pairs(waiter, waited)
        return table

    def add_pairs(self, waiter: np.ndarray, waited: np.ndarray) -> None:
        """Op ``waiter[j]`` also waits for transfer ``waited[j]``, after what it waits for
        already; pairs in the order each op's waits are to be kept."""
        if len(waiter):
            self._blocks.append((np.asarray(waiter, dtype=np.int64),
                                 np.asarray(waited, dtype=np.int64)))

    def add(self, op_id: int, transfer: int) -> None:
        """Op ``op_id`` also waits for ``transfer`` (one pair, after its others)."""
        if self._blocks:
            self._settle()
        rows = self._rows
        rows[op_id] = rows.get(op_id, ()) + (transfer,)

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the ops that wait, ascending; how many transfers each waits for; those transfers'
        ids one op after the other, each op's in order; int64)."""
        if not self._rows and self._blocks:
            return _by_op(np.concatenate([w for w, _ in self._blocks]),
                          np.concatenate([t for _, t in self._blocks]))
        self._settle()
        lengths, flat = int_rows(list(self._rows.values()))
        keys = np.fromiter(self._rows.keys(), dtype=np.int64, count=len(self._rows))
        if len(keys) > 1 and (keys[1:] < keys[:-1]).any():    # rows assigned out of op order
            order = np.argsort(keys, kind="stable")
            flat = flat[slice_indices((np.cumsum(lengths) - lengths)[order], lengths[order])]
            keys, lengths = keys[order], lengths[order]
        return keys, lengths, flat

    def _settle(self) -> None:
        """Append the pending blocks' pairs to the rows, block by block."""
        blocks, self._blocks = self._blocks, []
        rows = self._rows
        for waiter, waited in blocks:
            ops, lengths, flat = _by_op(waiter, waited)
            ids, at = flat.tolist(), 0
            for w, n in zip(ops.tolist(), lengths.tolist(), strict=True):
                got = rows.get(w)
                rows[w] = tuple(ids[at:at + n]) if got is None else got + tuple(ids[at:at + n])
                at += n

    def __bool__(self) -> bool:
        return bool(self._rows) or bool(self._blocks)

    def __getitem__(self, op_id: int) -> tuple[int, ...]:
        if self._blocks:
            self._settle()
        return self._rows[op_id]

    def get(self, op_id: int, default=None):
        if self._blocks:
            self._settle()
        return self._rows.get(op_id, default)

    def __setitem__(self, op_id: int, waits: tuple[int, ...]) -> None:
        if self._blocks:
            self._settle()
        self._rows[op_id] = waits

    def __delitem__(self, op_id: int) -> None:
        if self._blocks:
            self._settle()
        del self._rows[op_id]

    def __iter__(self) -> Iterator[int]:
        if self._blocks:
            self._settle()
        return iter(self._rows)

    def __len__(self) -> int:
        if self._blocks:
            self._settle()
        return len(self._rows)

    def __repr__(self) -> str:
        return f"WaitTable({dict(self.items())!r})"


def _by_op(waiter: np.ndarray, waited: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (op ``waiter[j]`` waits for ``waited[j]``; at least one) grouped by op: (the ops,
    ascending; how many each; the waited ids one op after the other, each op's in the order
    given)."""
    order = np.argsort(waiter, kind="stable")
    waiter = waiter[order]
    new = np.empty(len(waiter), dtype=bool)
    new[0] = True
    np.not_equal(waiter[1:], waiter[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    return waiter[starts], np.diff(np.append(starts, len(waiter))), waited[order]
