"""A one-stream run of a folded trace (:mod:`workloads.fold`): times, op table and checks from
the stamped rows and one figure per op kind, the per-op arrays built only when read.

Each further decode step is the last stamped step with its attention kinds swapped, so its
time is the step's fixed part (the unswapped rows' latencies, summed once) plus each swapped
kind's latency times the rows it fills; the steps' ends are one ``cumsum`` over steps. Totals
(FLOPs, bytes, energy, busy time) are each kind's figure times its count (``math.fsum``). The
per-op table (``FoldedTable.full``, what the report writes) and the timeline's per-op
``start`` / ``end`` are built on first read exactly as the unfolded run builds them (the
sequential sums of :func:`sim.engine._cumulative`); the folded makespan and step ends agree
with them to float rounding (the same latencies added in another grouping).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.columns import gathered_sum
from sim.engine import CostList, Timeline, _cumulative
from workloads.fold import FoldedOps, StepFold


class FoldedCosts(CostList):
    """:class:`CostList` of a folded run: ``index`` (the kind of every op) is the trace's
    per-op kind array, built when read."""

    def __init__(self, table: list, arrays: FoldedOps, lazy: list | None = None):
        super().__init__(table, None, lazy)   # type: ignore[arg-type]
        self._arrays = arrays

    @property
    def index(self) -> np.ndarray:
        return self._arrays.kind

    @index.setter
    def index(self, value) -> None:   # (CostList.__init__ sets it)
        pass


class FoldedTimeline(Timeline):
    """:class:`Timeline` of a folded one-stream run: ``head`` (the stamped rows' n + 1 times)
    and ``step_ends`` (the end of each further step, s); ``start`` / ``end`` per op are built
    on first read (``full()``: the unfolded run's n + 1 times)."""

    def __init__(self, arrays: FoldedOps, costs: FoldedCosts, head: np.ndarray,
                 step_ends: np.ndarray, full):
        super().__init__(None, None, costs, len(arrays))   # type: ignore[arg-type]
        self.engine_events = 1 if len(arrays) else 0
        self.arrays, self.head, self.step_ends, self._full = arrays, head, step_ends, full
        self._times: np.ndarray | None = None

    @classmethod
    def of(cls, arrays: FoldedOps, per_kind: np.ndarray, table: list, lazy: list,
           host: tuple | None = None) -> FoldedTimeline:
        """The run's times from each kind's latency (s) ``per_kind``; ``table`` and ``lazy``:
        the costs, as :class:`CostList` takes them; ``host``: ``(dispatch s per kind, the
        device's async issue)`` under an async host stack (sim/gpu/host.py), else None."""
        fold = arrays.fold
        kind = fold.head.kind
        head = np.empty(len(kind) + 1)
        head[0] = 0.0
        steps = step_durations(fold, per_kind)
        if host is None:
            _cumulative(per_kind, kind, head)
            ends = head[-1] + np.cumsum(steps)

            def full() -> np.ndarray:
                times = np.empty(len(arrays) + 1)
                times[0] = 0.0
                _cumulative(per_kind, arrays.kind, times)
                return times
        else:
            from sim.engine import Engine

            dispatch, issue = host
            head[1:] = Engine._async_ends(fold.head, per_kind[kind], dispatch[kind], issue)
            lam_head = float(per_kind[kind].sum()) if len(kind) else 0.0
            waits = float(head[-1]) - lam_head + np.cumsum(host_waits(fold, per_kind,
                                                                       dispatch, issue))
            ends = lam_head + np.cumsum(steps) + waits

            def full() -> np.ndarray:
                k = arrays.kind
                times = np.empty(len(k) + 1)
                times[0] = 0.0
                times[1:] = Engine._async_ends(arrays, per_kind[k], dispatch[k], issue)
                return times
        return cls(arrays, FoldedCosts(table, arrays, lazy), head, ends, full)

    def _all(self) -> np.ndarray:
        if self._times is None:
            self._times = self._full()
        return self._times

    def __getstate__(self) -> dict:
        """Pickled with its per-op times built (the builder is a closure)."""
        self._all()
        return {**self.__dict__, "_full": None}

    @property
    def start(self) -> np.ndarray:
        return self._all()[:-1]

    @start.setter
    def start(self, value) -> None:   # (Timeline.__init__ sets it)
        pass

    @property
    def end(self) -> np.ndarray:
        return self._all()[1:]

    @end.setter
    def end(self, value) -> None:
        pass

    @property
    def makespan(self) -> float:
        """End of the last op (s)."""
        return float(self.step_ends[-1]) if len(self.step_ends) else float(self.head[-1])


def host_waits(fold: StepFold, per_kind: np.ndarray, dispatch: np.ndarray,
               issue) -> np.ndarray:
    """GPU seconds each further step loses waiting for an async host
    (:func:`sim.gpu.host.async_ends`: a step is one forward pass; the wait grows by
    ``max(0, max_i v_i)`` with ``v_i`` = the pass's opening cost + the host's dispatch up to
    op ``i`` - the GPU's latency before it). Per step, ``v_i`` is the last stamped step's
    minus the swapped kinds' extra latency before ``i``, so the maximum is taken per stretch
    between swapped rows (one figure each, from the stamped step) against each step's swaps."""
    base = fold.base
    lat, disp = per_kind[base], dispatch[base]
    cum_d = np.cumsum(disp)
    before = np.concatenate(([0.0], np.cumsum(lat)[:-1]))   # latency before each row
    first_row = len(fold.head.kind) - fold.size
    opening = float(issue.pass_cost(fold.head.requests[first_row:first_row + 1])[0])
    v = opening + cum_d - before
    # stretch t: rows after t swapped rows (row i's "before" counts the swaps at rows < i)
    swapped = np.isin(base, fold.swapped)
    seen = np.concatenate(([0], np.cumsum(swapped)[:-1]))   # swapped rows before row i
    stretches = int(seen[-1]) + 1 if len(seen) else 1
    peak = np.full(stretches, -np.inf)
    np.maximum.at(peak, seen, v)
    # per stretch, how many rows of each template come before it (a running count of each)
    lut = np.zeros(int(base.max()) + 1, dtype=np.int64) if len(base) else np.zeros(1, int)
    lut[list(fold.swapped)] = np.arange(len(fold.swapped))
    hits = np.zeros((stretches, len(fold.swapped)))
    hits[np.arange(1, stretches), lut[base[swapped]]] = 1.0
    before_n = np.cumsum(hits, axis=0)
    extra = np.stack([per_kind[fold.swapped_ids(j)] - per_kind[old]
                      for j, old in enumerate(fold.swapped)], axis=0) \
        if fold.swapped else np.zeros((0, fold.reps))
    worst = (peak[:, None] - before_n @ extra).max(axis=0)
    return np.maximum(worst, 0.0)


def step_durations(fold: StepFold, per_kind: np.ndarray) -> np.ndarray:
    """Seconds of each further step: its unswapped rows' latencies (summed once) plus each
    swapped template's latency in that step times the rows it fills."""
    base = fold.base
    fixed = float(per_kind[base[~np.isin(base, fold.swapped)]].sum())
    out = np.full(fold.reps, fixed)
    for j, used in enumerate(fold.uses()):
        out += used * per_kind[fold.swapped_ids(j)]
    return out


class FoldedTable:
    """The op table of a folded run for the run's own metrics and checks (counts x per-kind
    figures, the timeline's folded times); :meth:`full` is the per-op table
    (:class:`sim.columns.Columns`, what :func:`sim.result.op_columns` gives unfolded)."""

    def __init__(self, arrays: FoldedOps, timeline: FoldedTimeline, full,
                 figures: dict[str, np.ndarray]):
        self.arrays, self.timeline, self._full, self._table = arrays, timeline, full, None
        self.figures = figures   # per kind: alone_s, roofline_s, flops, bytes, energy_J ...
        n_kinds = len(arrays.kinds)
        self.counts = arrays.fold.counts(n_kinds)
        self._by_phase: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.arrays)

    def __getstate__(self) -> dict:
        """Pickled with its per-op table built (the builder is a closure)."""
        self.full()
        return {**self.__dict__, "_full": None}

    def full(self):
        """The per-op table (built on first call)."""
        if self._table is None:
            self._table = self._full()
        return self._table

    def __getattr__(self, name: str):
        """What :class:`sim.columns.Columns` has and this does not (``text``, ``frame``,
        ...): the per-op table's, built for it."""
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full(), name)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.full()[name]

    def __contains__(self, name: object) -> bool:
        return name in self.full()

    def phase_code(self, label: str) -> int | None:
        phases = self.arrays.phases
        return phases.index(label) if label in phases else None

    def counts_of(self, phase: str | None) -> np.ndarray:
        """Ops per kind (of ``phase``; None: all)."""
        if phase is None:
            return self.counts
        code = self.phase_code(phase)
        if code is None:
            return np.zeros_like(self.counts)
        if code not in self._by_phase:
            self._by_phase[code] = self.arrays.fold.counts(len(self.arrays.kinds), code)
        return self._by_phase[code]

    def total(self, name: str, phase: str | None = None) -> float:
        """Column ``name`` summed over the ops (of ``phase``): each kind's figure x its count;
        ``latency_s`` (end - start, a wait for an async host included) from the times. A
        phase held in the stamped rows only (the prefill) is summed as the unfolded table sums
        its rows (:func:`sim.columns.gathered_sum`, the same floats)."""
        fold = self.arrays.fold
        code = self.phase_code(phase) if phase is not None else None
        if name == "latency_s":   # one stream: op i starts where i - 1 ends (waits included)
            return self._busy(code) if phase is None or code is not None else 0.0
        values = self.figures[name]
        if code is not None and (code != fold.step_phase or not fold.reps):
            rows = np.flatnonzero(fold.head.phase == code)   # a phase of the stamped rows:
            if len(rows) and int(rows[-1] - rows[0]) + 1 == len(rows):   # summed as unfolded
                return gathered_sum(values, fold.head.kind, int(rows[0]), int(rows[-1]) + 1)
        counts = self.counts_of(phase)
        used = np.flatnonzero(counts)
        return math.fsum((values[used] * counts[used]).tolist())

    def _busy(self, code: int | None) -> float:
        """Seconds of the ops (of phase code ``code``; None: all) from start to end: on one
        stream the sum telescopes to the span each phase's runs cover."""
        tl, fold = self.timeline, self.arrays.fold
        if code is None:
            return self.makespan
        spans = np.diff(tl.head)[fold.head.phase == code]
        tail = float(tl.step_ends[-1] - tl.head[-1]) if fold.reps and \
            code == fold.step_phase else 0.0
        return math.fsum(spans.tolist()) + tail

    def phase_end(self, phase: str) -> float | None:
        """End (s) of the last op of ``phase`` (None: no op of it)."""
        code = self.phase_code(phase)
        if code is None:
            return None
        fold, tl = self.arrays.fold, self.timeline
        if code == fold.step_phase and fold.reps:
            return float(tl.step_ends[-1])
        rows = np.flatnonzero(fold.head.phase == code)
        return float(tl.head[rows[-1] + 1]) if len(rows) else None

    @property
    def makespan(self) -> float:
        return self.timeline.makespan


def folded(table: Any) -> FoldedTable | None:
    """``table`` if it is a folded run's op table, else None."""
    return table if isinstance(table, FoldedTable) else None


def check_folded(trace, table: FoldedTable, rel_tol: float) -> dict[str, str]:
    """The invariants of :func:`sim.invariants.check_invariants` on a folded one-stream run:
    every op ran once (each kind's count from the fold, ``len`` equal to the trace's), no op
    below its roofline (each kind's latency against its bound), FLOPs and bytes conserved
    (counts x figures against the trace's kinds), every dependency an earlier op of the one
    stream (which then starts after it ends: latencies are >= 0), every request's tokens."""
    from sim.invariants import InvariantError

    arrays = trace.compact
    out: dict[str, str] = {}
    if not np.isfinite(table.makespan):   # overflow from the input's magnitudes
        from sim.devices.base import SimError

        raise SimError("the run ends at a non-finite time: a rate, latency or size of the arch "
                       "or workload is too extreme")
    if int(table.counts.sum()) != len(arrays):
        raise InvariantError(f"ops lost or duplicated: trace has {len(arrays)}, the folded "
                             f"run counts {int(table.counts.sum())}")
    out["every_op_ran_once"] = "passed"
    used = np.flatnonzero(table.counts)
    lat, roof = table.figures["alone_s"][used], table.figures["roofline_s"][used]
    below = np.flatnonzero(lat < roof * (1 - rel_tol))
    if len(below):
        k = int(used[below[0]])
        raise InvariantError(f"op kind {k} ({arrays.kinds[k].name}) took {lat[below[0]]:.6g} s, "
                             f"below its roofline bound {roof[below[0]]:.6g} s")
    if (lat < 0).any():
        raise InvariantError("an op kind has a negative latency")
    out["time_ge_roofline"] = "passed"
    for col in ("flops", "bytes"):
        want = math.fsum((np.array([getattr(arrays.kinds[k], col) for k in used.tolist()],
                                   dtype=float) * table.counts[used]).tolist())
        got = table.total(col)
        if not math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-6):
            raise InvariantError(f"{col} not conserved: trace {want:.6g}, result {got:.6g}")
        out[f"{col}_conserved"] = "passed"
    if not arrays.fold.deps_backward():
        raise InvariantError("a folded op depends on a later op")
    out["dependencies_respected"] = "passed"
    sc = trace.scenario
    phases = trace.meta.get("phases", ("prefill", "decode"))
    steps = ("prefill" in phases) + (sc.gen_len - 1) * ("decode" in phases)
    generated = arrays.fold.generated(arrays.kinds)
    if generated != sc.batch * steps:
        raise InvariantError(f"requests lost: {generated} tokens generated, expected "
                             f"{sc.batch} requests x {steps} steps")
    out["no_request_lost"] = "passed"
    return out
