"""A run's link loads as arrays: each op's list of ``(resource, bytes)`` loads (a plan's
``op_loads``, resolved to resources) indexed once per distinct list, since ops share a few
lists (one per op kind and placement). The several-stream engine (:mod:`sim.engine_arrays`)
and its contention-free pass (:mod:`sim.engine_dag`) read it instead of a Python pass over
every loaded op."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sim.columns import in_first_order
from sim.system.grouped_loads import GroupedLoads
from workloads.ragged import slice_indices


def loads_alone(lists: list[list]) -> tuple[np.ndarray, np.ndarray]:
    """Per list of link loads ((resource, bytes)): the longest transfer time alone (s, at
    each resource's rate; 0 without bytes) and whether two of them share a resource."""
    longest, twice = [], []
    for ld in lists:
        longest.append(max((nb / res.rate for res, nb in ld if nb > 0), default=0.0))
        twice.append(len({id(res) for res, _ in ld}) != len(ld))
    return np.array(longest, dtype=float), np.array(twice, dtype=bool)


class LoadIndex:
    """The link loads of a run's ops as arrays. Ops share lists of loads (one per op kind and
    placement), so each distinct list is worked out once: ``ids`` (the ops with loads, in
    ``op_loads``' order), ``code`` (per such op, its list in ``lists``), ``of_op`` (per op
    of the ``n``, its list's code, -1 without), ``resources`` (the links, by code) and, per
    list, its loads with bytes at ``ptr[c]:ptr[c + 1]`` of ``res`` (link codes) and ``nb``
    (bytes)."""

    def __init__(self, op_loads: Mapping, n: int):
        self._groups: list[tuple[int, np.ndarray]] | None = None
        self._by_list: tuple[np.ndarray, list] | None = None   # (stream, by_list's triples)
        if isinstance(op_loads, GroupedLoads):
            self._from_groups(op_loads)
        else:
            codes: dict[int, int] = {}
            self.ids = np.fromiter(op_loads, dtype=np.int64, count=len(op_loads))
            self.code = np.fromiter((codes.setdefault(id(ld), len(codes))
                                     for ld in op_loads.values()), dtype=np.int64,
                                    count=len(op_loads))
            firsts: dict[int, list] = {}
            for ld in op_loads.values():       # the distinct lists, in code order
                if len(firsts) == len(codes):
                    break
                firsts.setdefault(id(ld), ld)
            self.lists: list[list] = list(firsts.values())
        self.of_op = np.full(n, -1, dtype=np.int64)
        self.of_op[self.ids] = self.code
        found: dict[int, int] = {}
        self.resources: list = []
        ptr, res, nb = [0], [], []
        for ld in self.lists:
            for r, x in ld:
                c = found.get(id(r))
                if c is None:
                    c = found[id(r)] = len(self.resources)
                    self.resources.append(r)
                if x > 0:
                    res.append(c)
                    nb.append(x)
            ptr.append(len(res))
        self.ptr = np.array(ptr, dtype=np.int64)
        self.res = np.array(res, dtype=np.int64)
        self.nb = np.array(nb, dtype=np.float64)

    def _from_groups(self, grouped: GroupedLoads) -> None:
        """``ids``, ``code`` and ``lists`` of a :class:`GroupedLoads`, as the dict path
        numbers them: a code per distinct list (by identity), in the order ops first meet
        them."""
        self.ids = grouped.ids
        _, first, _ = in_first_order(grouped.group)
        code_of_list: dict[int, int] = {}
        code_of_group = np.full(len(grouped.tuples), -1, dtype=np.int64)
        self.lists = []
        for g in grouped.group[first].tolist():       # groups in the order ops meet them
            ld = grouped.tuples[g]
            if id(ld) not in code_of_list:
                code_of_list[id(ld)] = len(self.lists)
                self.lists.append(ld)
            code_of_group[g] = code_of_list[id(ld)]
        self.code = code_of_group[grouped.group]

    def table(self, ids: np.ndarray, one: np.ndarray) -> dict:
        """A stream's loads as arrays, its ops ``ids`` in position order (``one``: which
        have loads): ``loaded_at`` (their positions), per such op ``j`` its loads with bytes
        at ``load_ptr[j]:load_ptr[j + 1]`` of ``load_pos`` (the op's position),
        ``load_res`` (link codes) and ``load_nb`` (bytes), in the list's order."""
        loaded_at = np.flatnonzero(one)
        code = self.of_op[ids[loaded_at]]
        count = self.ptr[code + 1] - self.ptr[code]
        load_ptr = np.zeros(len(code) + 1, dtype=np.int64)
        np.cumsum(count, out=load_ptr[1:])
        entry = slice_indices(self.ptr[code], count)
        return {"loaded_at": loaded_at, "load_ptr": load_ptr,
                "load_pos": np.repeat(loaded_at, count), "load_res": self.res[entry],
                "load_nb": self.nb[entry]}

    def by_list(self, stream: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """(list code, stream code, the ops with that list on that stream) for each pair
        that occurs (worked out once per ``stream`` array: the engine's set-up reads them
        twice)."""
        if self._by_list is None or self._by_list[0] is not stream:
            self._by_list = (stream, list(self._by_list_of(stream)))
        return self._by_list[1]

    def _by_list_of(self, stream: np.ndarray):
        if not len(self.ids):
            return
        width = int(stream.max()) + 1
        for key, ids in _grouped_ids(self.code * width + stream[self.ids], self.ids):
            c, code = divmod(key, width)
            yield c, code, ids

    def groups(self) -> list[tuple[int, np.ndarray]]:
        """(list code, the ops with that list) for each distinct list (worked out once: the
        contention-free check reads them up to three times)."""
        if self._groups is None:
            self._groups = list(_grouped_ids(self.code, self.ids))
        return self._groups


def _grouped_ids(keys: np.ndarray, ids: np.ndarray):
    """(key, its ids in their order) for each distinct key of ``keys`` (one per id)."""
    if not len(ids):
        return
    order = np.argsort(keys, kind="stable")
    keys, ids = keys[order], ids[order]
    cut = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    for lo, hi in zip(np.concatenate(([0], cut)).tolist(),
                      np.append(cut, len(keys)).tolist(), strict=True):
        yield int(keys[lo]), ids[lo:hi]
