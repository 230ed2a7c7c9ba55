"""Decode steps held folded: one stamped step and, per further step, only the kinds that change.

A long decode repeats one step's ops: every further step is the last stamped step with its
attention templates resized to the step's KV length (:func:`workloads.tracer.stamp_repeats`).
:class:`FoldedOps` holds such a trace as the stamped rows (``head``: prefill and the first
decode steps) plus :class:`StepFold` - how many further steps, their step numbers, and the kind
id each swapped template takes in each of them. What a one-stream run needs (which kinds occur
and where first, how often each occurs, per phase, the lm_head's requests, the ops of the
distinct kinds) is answered from that in O(distinct kinds), not O(ops). Any other reader of the
row arrays (``kind``, ``phase``, ``deps`` ...) gets them materialised on first access - the
very arrays the unfolded tracer builds - so code that knows nothing of folding stays right.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workloads.records import record
from workloads.trace import CompactOps, Op

#: the per-op arrays of :class:`CompactOps` (materialised on first access of a folded one)
ROW_FIELDS = ("kind", "phase", "layer", "step", "tokens", "requests", "microbatch",
              "dep_ptr", "dep_idx")


@record
class StepFold:
    """Further decode steps as copies of the last stamped one (the head's last ``size`` rows).

    ``steps``: the step number of each further step; ``swapped``: the kind ids of the last
    stamped step that each further step replaces (template ``j``), whose replacement in
    further step ``r`` is kind ``first + r * len(swapped) + j``."""

    head: CompactOps          # the stamped rows (their own arrays, ids 0..len(head) - 1)
    size: int                 # rows per step
    steps: np.ndarray         # (reps,) step numbers
    swapped: tuple[int, ...]  # kind ids of the last stamped step replaced per further step
    first: int                # kind id of further step 0's replacement of swapped[0]

    @property
    def reps(self) -> int:
        return len(self.steps)

    @property
    def rows(self) -> int:
        """All rows, the further steps' included."""
        return len(self.head.kind) + self.reps * self.size

    @property
    def base(self) -> np.ndarray:
        """Kind ids of the last stamped step (each further step's, before its swaps)."""
        return self.head.kind[len(self.head.kind) - self.size:]

    def swapped_ids(self, j: int) -> np.ndarray:
        """Kind id of template ``j``'s replacement in each further step."""
        return self.first + np.arange(self.reps, dtype=np.int64) * len(self.swapped) + j

    def uses(self) -> list[int]:
        """How many rows of a step each swapped template fills."""
        base = self.base
        return [int((base == old).sum()) for old in self.swapped]

    def counts(self, n_kinds: int, phase: int | None = None) -> np.ndarray:
        """Rows per kind id (of phase code ``phase``; None: all rows)."""
        head = self.head
        kinds = head.kind if phase is None else head.kind[head.phase == phase]
        out = np.bincount(kinds, minlength=n_kinds).astype(np.int64)
        if phase is None or phase == self.step_phase:
            base = self.base
            kept = base[~np.isin(base, self.swapped)]
            out += self.reps * np.bincount(kept, minlength=n_kinds)[:n_kinds]
            for j, used in enumerate(self.uses()):
                out[self.swapped_ids(j)] += used
        return out[:n_kinds]

    @property
    def step_phase(self) -> int:
        """The phase code of every further step's rows (one: :func:`stamp_repeats` folds
        only steps of one phase)."""
        return int(self.head.phase[-1])

    def first_seen(self, n_kinds: int) -> tuple[np.ndarray, np.ndarray]:
        """(the kinds that occur, in the order they first occur; the row of each one's first
        occurrence) - what :func:`first_seen` gives over the materialised rows."""
        used, at = first_seen(self.head.kind, n_kinds)
        if not self.reps or not self.swapped:
            return used, at
        base = self.base
        where = [int(np.argmax(base == old)) for old in self.swapped]
        order = np.argsort(where, kind="stable")
        h = len(self.head.kind)
        ids = np.stack([self.swapped_ids(int(j)) for j in order], axis=1).reshape(-1)
        rows = (h + np.arange(self.reps, dtype=np.int64)[:, None] * self.size +
                np.array([where[int(j)] for j in order], dtype=np.int64)[None, :]).reshape(-1)
        return np.concatenate([used, ids]), np.concatenate([at, rows])

    def ops_at(self, kinds: list, phases: tuple[str, ...], at: np.ndarray,
               stream: str) -> list[Op]:
        """The ops with ids ``at`` (what the materialised trace's ``ops[i]`` would be, on
        ``stream``): a further step's row is the last stamped step's row with its kind
        swapped, its step number, and its dependencies shifted by whole steps. Each op's slots
        are set directly, as :meth:`CompactOps.materialise` sets them."""
        from workloads.trace import _OP_FIELDS, op_work

        head = self.head
        h, size, nv = len(head.kind), self.size, len(self.swapped)
        at = np.asarray(at, dtype=np.int64)
        tail = at >= h
        r, j = np.divmod(np.where(tail, at - h, 0), size)
        row = np.where(tail, h - size + j, at)
        kind = head.kind[row].astype(np.int64)
        lut = np.full(max(int(kind.max()) + 1 if len(kind) else 1, 1), -1, dtype=np.int64)
        lut[[k for k in self.swapped if k < len(lut)]] = \
            [m for m, k in enumerate(self.swapped) if k < len(lut)]
        slot = lut[kind]
        swap = tail & (slot >= 0)
        kind[swap] = self.first + r[swap] * nv + slot[swap]
        step = np.where(tail, self.steps[r] if self.reps else 0, head.step[row])
        shift = np.where(tail, (r + 1) * size, 0)
        ptr, idx = head.dep_ptr.tolist(), head.dep_idx.tolist()
        layer, tokens = head.layer[row].tolist(), head.tokens[row].tolist()
        requests, chain = head.requests[row].tolist(), head.microbatch[row].tolist()
        phase = head.phase[row].tolist()
        if Op.__match_args__ != _OP_FIELDS:   # Op changed: its constructor
            return [Op(i, kinds[k].name, kinds[k].kind, phases[ph], la, st, kinds[k].compute,
                       kinds[k].shards, tuple(d + sh for d in idx[ptr[w]:ptr[w + 1]]),
                       kinds[k].collective, tk, rq, stream, kinds[k].op_class, kinds[k].flops,
                       kinds[k].bytes, mb, kinds[k].rank)
                    for i, k, w, ph, la, st, tk, rq, mb, sh in zip(
                        at.tolist(), kind.tolist(), row.tolist(), phase, layer, step.tolist(),
                        tokens, requests, chain, shift.tolist(), strict=True)]
        new, out = Op.__new__, []
        for i, k, w, ph, la, st, tk, rq, mb, sh in zip(
                at.tolist(), kind.tolist(), row.tolist(), phase, layer, step.tolist(), tokens,
                requests, chain, shift.tolist(), strict=True):
            t = kinds[k]
            flops, nbytes = (t.flops, t.bytes) if t.flops >= 0 and t.bytes >= 0 else \
                op_work(t.compute, t.collective, t.shards)
            op = new(Op)
            op.id, op.name, op.kind, op.phase, op.layer, op.step = i, t.name, t.kind, \
                phases[ph], la, st
            op.compute, op.shards, op.collective = t.compute, t.shards, t.collective
            op.deps = tuple(d + sh for d in idx[ptr[w]:ptr[w + 1]])
            op.tokens, op.requests, op.device = tk, rq, stream
            op.op_class, op.flops, op.bytes = t.op_class or t.name, flops, nbytes
            op.microbatch, op.rank, op.where, op.tensors = mb, t.rank, "", ()
            out.append(op)
        return out

    def generated(self, kinds: list) -> int:
        """Requests summed over the lm_head rows (the tokens the run generates)."""
        head = self.head
        is_head = np.array([k.name == "lm_head" for k in kinds] or [False])
        stamped = int(head.requests[is_head[head.kind]].sum())
        h = len(head.kind)
        last = slice(h - self.size, h)
        per_step = int(head.requests[last][is_head[head.kind[last]]].sum())
        return stamped + self.reps * per_step

    def deps_backward(self) -> bool:
        """Whether every dependency of every row is an earlier row (the last stamped step's
        dependencies, which the further steps shift by whole steps, included)."""
        ptr, idx = self.head.dep_ptr, self.head.dep_idx
        owner = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
        return bool((idx < owner).all()) if len(idx) else True


def first_seen(kind: np.ndarray, n_kinds: int) -> tuple[np.ndarray, np.ndarray]:
    """(the kinds that occur in ``kind``, in the order they first occur; the position of each
    one's first occurrence). A compact trace numbers its kinds as they first appear: then a
    kind first occurs where the running maximum rises, and the kinds there are 0, 1, 2, ...
    (checked; one ``maximum.accumulate`` pass). Otherwise by ``np.minimum.at``."""
    n = len(kind)
    if n and kind.dtype.kind in "iu":
        top = np.maximum.accumulate(kind)
        rise = np.flatnonzero(top[1:] != top[:-1])
        at = np.empty(len(rise) + 1, dtype=np.int64)
        at[0] = 0
        np.add(rise, 1, out=at[1:])
        seen = kind[at]
        if int(seen[0]) == 0 and int(top[-1]) == len(at) - 1 < n_kinds and \
                np.array_equal(seen, np.arange(len(at))):
            return seen.astype(np.int64), at
    first = np.full(n_kinds, n, dtype=np.int64)   # each kind's first op
    np.minimum.at(first, kind, np.arange(n, dtype=np.int64))
    used = np.flatnonzero(first < n)
    used = used[np.argsort(first[used])]
    return used, first[used]


def _row_property(name: str) -> property:
    def get(self: FoldedOps):
        return self._materialised()[name]

    def put(self: FoldedOps, value) -> None:
        self._materialised()[name] = value

    return property(get, put, doc=f"per-op ``{name}`` (materialised on first access)")


class FoldedOps(CompactOps):
    """:class:`CompactOps` whose further decode steps are held as a :class:`StepFold`; its
    per-op arrays are built by ``build()`` (the unfolded tracer's arrays) on first access."""

    def __init__(self, kinds: list, phases: tuple[str, ...], fold: StepFold,
                 build: Callable[[], dict[str, np.ndarray]]):
        self.kinds, self.phases, self.fold = kinds, phases, fold
        self.device, self.stream, self.stream_names = "", None, ()
        self.hosted = None
        self._build: Callable[[], dict[str, np.ndarray]] | None = build
        self._rows: dict[str, np.ndarray] | None = None

    @property
    def folded(self) -> bool:
        """True while the per-op arrays have not been built."""
        return self._rows is None

    def _materialised(self) -> dict[str, np.ndarray]:
        if self._rows is None:
            self._rows = self._build()
            self._build = None
        return self._rows

    def __len__(self) -> int:
        return self.fold.rows

    def __getstate__(self) -> dict:
        """Pickled with its per-op arrays built (the builder is a closure)."""
        self._materialised()
        return self.__dict__


for _name in ROW_FIELDS:
    setattr(FoldedOps, _name, _row_property(_name))
