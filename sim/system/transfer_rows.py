"""A plan's transfers held as columns: a list of :class:`~sim.system.plan.Transfer` that makes
no object per transfer.

A placement that moves the KV cache or the weights every layer and step makes one transfer per
(run, tensor): 131k for a 2,048-token Llama-2-7B run. :class:`TransferRows` keeps them as
columns (ids, bytes, dependencies, phase, layer, step, release, anchor, floor, energy) beside
a small table of *routes* (what transfers over one route share: name, tensor, stream, tiers,
replicas, hops, latency) and the tuples of loads they share, so the planners append rows in
bulk and the engine and the tables read columns. It is still a sequence of ``Transfer``
(each made when read), so code that walks transfers one by one reads the same objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from sim.system.plan import Load, Transfer
from workloads.ragged import int_rows

#: per route: the fields of :class:`Transfer` its transfers share
ROUTE_FIELDS = ("name", "tensor", "stream", "src", "dst", "replicas", "hops", "latency")
#: per row: the numeric columns (``phase`` a code into :attr:`TransferRows.phases`)
_INT_COLUMNS = ("id", "route", "loads", "phase", "layer", "step", "release")
_FLOAT_COLUMNS = ("nbytes", "floor", "energy", "anchor")
_ROW = _INT_COLUMNS + _FLOAT_COLUMNS     # a row added alone, as a tuple


class TransferRows:
    """A sequence of transfers as columns (module docstring). Rows are added one at a time
    (:meth:`append`, :meth:`add`) or in blocks (:meth:`extend`); :meth:`column`,
    :meth:`deps` and :meth:`route_column` read them without making objects."""

    def __init__(self, transfers: Iterable[Transfer] = ()):
        self.routes: list[tuple] = []            # ROUTE_FIELDS per route code
        self._route_code: dict[tuple, int] = {}
        self.loads: list[tuple[Load, ...]] = []  # tuples of loads, shared by their rows
        self._loads_code: dict[int, int] = {}    # id(tuple) -> its code
        self.phases: list[str] = []
        self._phase_code: dict[str, int] = {}
        self._pending: list[tuple] = []          # rows added one at a time, as _ROW
        self._pending_deps: list[tuple[int, ...]] = []
        self._blocks: list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]] = []
        self._joined: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray] | None = None
        self._n = 0
        self._used: set[int] = set()              # route codes some row is on
        for tr in transfers:
            self.append(tr)

    # -- codes ---------------------------------------------------------------------------
    def route_code(self, fields: tuple) -> int:
        """The code of a route given as its :data:`ROUTE_FIELDS` values."""
        return _code(self._route_code, self.routes, fields, fields)

    def loads_code(self, loads: tuple[Load, ...]) -> int:
        """The code of a tuple of loads (by identity: rows keep sharing the tuple)."""
        return _code(self._loads_code, self.loads, id(loads), loads)

    def phase_code(self, phase: str) -> int:
        """The code of a phase's name."""
        return _code(self._phase_code, self.phases, phase, phase)

    # -- adding --------------------------------------------------------------------------
    def add(self, tid: int, route: int, loads: int, nbytes: float, floor: float,
            energy: float, deps: tuple[int, ...], phase: str, layer: int, step: int,
            release: int, anchor: float) -> int:
        """Append one row (``route``, ``loads``: codes); returns ``tid``."""
        code = self._phase_code.get(phase)
        if code is None:
            code = self.phase_code(phase)
        self._pending.append((tid, route, loads, code, layer, step, release, nbytes, floor,
                              energy, anchor))
        self._pending_deps.append(deps)
        self._used.add(route)
        self._n += 1
        self._joined = None
        return tid

    def append(self, tr: Transfer) -> None:
        """Append a transfer given as an object."""
        route = self.route_code(tuple(getattr(tr, f) for f in ROUTE_FIELDS))
        self.add(tr.id, route, self.loads_code(tr.loads), tr.nbytes, tr.floor, tr.energy_J,
                 tuple(tr.deps), tr.phase, tr.layer, tr.step, tr.release, tr.anchor)

    def extend(self, columns: dict[str, np.ndarray], dep_count: np.ndarray,
               dep_idx: np.ndarray) -> None:
        """Append a block of rows: every column of :data:`_INT_COLUMNS` and
        :data:`_FLOAT_COLUMNS` (``phase`` as codes of :meth:`phase_code`), each row's number
        of dependencies and their ids one row after the other."""
        self._flush()
        block = {c: np.asarray(columns[c], dtype=np.int64) for c in _INT_COLUMNS}
        block.update({c: np.asarray(columns[c], dtype=np.float64) for c in _FLOAT_COLUMNS})
        self._blocks.append((block, np.asarray(dep_count, dtype=np.int64),
                             np.asarray(dep_idx, dtype=np.int64)))
        self._used.update(np.unique(block["route"]).tolist())
        self._n += len(block["id"])
        self._joined = None

    def _flush(self) -> None:
        """Move the rows added one at a time into a block."""
        if not self._pending:
            return
        columns = list(zip(*self._pending, strict=True))
        block = {c: np.array(columns[k], dtype=np.int64 if c in _INT_COLUMNS else np.float64)
                 for k, c in enumerate(_ROW)}
        self._blocks.append((block, *int_rows(self._pending_deps)))
        self._pending, self._pending_deps = [], []

    # -- reading columns -----------------------------------------------------------------
    def _join(self) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        if self._joined is None:
            self._flush()
            if len(self._blocks) > 1:
                cols = {c: np.concatenate([b[0][c] for b in self._blocks])
                        for c in _INT_COLUMNS + _FLOAT_COLUMNS}
                count = np.concatenate([b[1] for b in self._blocks])
                idx = np.concatenate([b[2] for b in self._blocks])
                self._blocks = [(cols, count, idx)]
            elif self._blocks:
                cols, count, idx = self._blocks[0]
            else:
                cols = {c: np.zeros(0, dtype=np.int64) for c in _INT_COLUMNS}
                cols.update({c: np.zeros(0) for c in _FLOAT_COLUMNS})
                count = idx = np.zeros(0, dtype=np.int64)
            ptr = np.zeros(len(count) + 1, dtype=np.int64)
            np.cumsum(count, out=ptr[1:])
            self._joined = (cols, ptr, idx)
        return self._joined

    def column(self, name: str) -> np.ndarray:
        """One column, a value per row: id, route, loads, phase (codes), layer, step,
        release (ints); nbytes, floor, energy, anchor (floats)."""
        return self._join()[0][name]

    def deps(self) -> tuple[np.ndarray, np.ndarray]:
        """(ptr, idx): row ``i``'s dependencies are ``idx[ptr[i]:ptr[i + 1]]``."""
        _, ptr, idx = self._join()
        return ptr, idx

    def route_column(self, field: str) -> tuple[list, np.ndarray]:
        """(a route field's value per route code, each row's route code)."""
        at = ROUTE_FIELDS.index(field)
        return [r[at] for r in self.routes], self.column("route")

    def streams(self) -> set[str]:
        """The copy streams some row is on."""
        at = ROUTE_FIELDS.index("stream")
        return {self.routes[c][at] for c in self._used}   # (kept as rows are added)

    def positional(self, first: int) -> bool:
        """Whether row ``j``'s id is ``first + j`` for every row."""
        ids = self.column("id")
        return bool(np.array_equal(ids, first + np.arange(len(ids), dtype=np.int64)))

    # -- the sequence --------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def _make(self, cols: dict[str, list], ptr: list[int], idx: list[int], i: int) -> Transfer:
        name, tensor, stream, src, dst, replicas, hops, latency = self.routes[cols["route"][i]]
        return Transfer(cols["id"][i], name, tensor, stream, src, dst, cols["nbytes"][i],
                        replicas, hops, self.loads[cols["loads"][i]], latency,
                        cols["floor"][i], tuple(idx[ptr[i]:ptr[i + 1]]),
                        self.phases[cols["phase"][i]], cols["layer"][i], cols["step"][i],
                        cols["release"][i], cols["energy"][i], cols["anchor"][i])

    def __iter__(self) -> Iterator[Transfer]:
        arrays, ptr, idx = self._join()
        cols = {c: a.tolist() for c, a in arrays.items()}
        ptr_l, idx_l = ptr.tolist(), idx.tolist()
        for i in range(self._n):
            yield self._make(cols, ptr_l, idx_l, i)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return list(self)[i]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("transfer row out of range")
        arrays, ptr, idx = self._join()
        cols = {c: [a[i].item()] for c, a in arrays.items()}
        return self._make(cols, [0, int(ptr[i + 1] - ptr[i])],
                          idx[ptr[i]:ptr[i + 1]].tolist(), 0)

    def __eq__(self, other) -> bool:
        if not isinstance(other, TransferRows | list | tuple):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"TransferRows({self._n} transfers over {len(self.routes)} routes)"


def _code(codes: dict, values: list, key, value) -> int:
    """The code of ``key`` in ``codes``: a new one (``value`` appended to ``values``) where it
    has none."""
    code = codes.get(key)
    if code is None:
        code = codes[key] = len(values)
        values.append(value)
    return code


def as_rows(transfers: Iterable[Transfer]) -> TransferRows:
    """``transfers`` as :class:`TransferRows` (itself where it is one)."""
    return transfers if isinstance(transfers, TransferRows) else TransferRows(transfers)


def transfer_users(transfers: Iterable[Transfer]) -> list[tuple[str, tuple[Load, ...]]]:
    """Each distinct (copy stream, tuple of loads) of ``transfers``, once (by route code,
    then loads code)."""
    rows = as_rows(transfers)
    if not len(rows):
        return []
    streams, route = rows.route_column("stream")
    pairs = route * len(rows.loads) + rows.column("loads")
    out = {}
    for p in np.unique(pairs).tolist():
        r, c = divmod(p, len(rows.loads))
        out.setdefault((streams[r], c), rows.loads[c])
    return [(stream, loads) for (stream, _), loads in out.items()]
