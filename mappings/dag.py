"""Op DAGs for scratchpad scheduling (COSMA-style): whole tensors, their sizes and lifetimes.

A :class:`Dag` is a list of ops, each reading some tensors and writing one. Tensors no op writes
are **graph inputs** (weights, activations from outside: they start off chip); tensors named as
outputs must end off chip (**graph outputs**). Every other tensor is an **intermediate**: it needs
no off-chip traffic at all unless the scheduler spills it. Sizes are bytes, taken from the Einsum
IR (:func:`dag_from_einsums`, :func:`dag_from_cascade`).

A :class:`Schedule` is what a scheduler returns and :func:`check_schedule` replays independently:
per step ``t`` (one op per step) the tensors resident on chip with their byte addresses, the
tensors loaded at the start of the step and those stored off chip at its end.

Units: bytes for sizes, addresses and traffic; seconds for solver times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workloads.einsum import Cascade, Einsum


class ScheduleError(ValueError):
    """A DAG or budget the schedulers cannot handle (one-line message)."""


@dataclass(frozen=True)
class OpNode:
    """One op: the tensors it reads and the one it writes."""

    name: str
    inputs: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class Dag:
    """Ops in a valid (topological) program order and the byte size of every tensor."""

    ops: tuple[OpNode, ...]
    sizes: dict[str, float]
    outputs: tuple[str, ...]

    def __post_init__(self) -> None:
        written: set[str] = set()
        for op in self.ops:
            if op.output in written:
                raise ScheduleError(f"tensor '{op.output}' is written by two ops")
            for t in (*op.inputs, op.output):
                if t not in self.sizes or not self.sizes[t] > 0:
                    raise ScheduleError(f"op '{op.name}': tensor '{t}' needs a positive size")
            written.add(op.output)
        for i, op in enumerate(self.ops):  # program order must be topological
            later = {o.output for o in self.ops[i:]}
            bad = [t for t in op.inputs if t in later]
            if bad:
                raise ScheduleError(f"op '{op.name}' reads '{bad[0]}' before (or while) it is "
                                    "written: the op list must be in a topological order")
        for t in self.outputs:
            if t not in written:
                raise ScheduleError(f"graph output '{t}' is written by no op")

    @property
    def producer(self) -> dict[str, int]:
        """Tensor name -> index of the op that writes it (graph inputs absent)."""
        return {op.output: i for i, op in enumerate(self.ops)}

    @property
    def consumers(self) -> dict[str, tuple[int, ...]]:
        """Tensor name -> indices of the ops that read it."""
        out: dict[str, list[int]] = {t: [] for t in self.sizes}
        for i, op in enumerate(self.ops):
            for t in dict.fromkeys(op.inputs):
                out[t].append(i)
        return {t: tuple(v) for t, v in out.items()}

    @property
    def tensors(self) -> tuple[str, ...]:
        """Every tensor any op touches, in first-appearance order."""
        seen: dict[str, None] = {}
        for op in self.ops:
            for t in (*op.inputs, op.output):
                seen.setdefault(t, None)
        return tuple(seen)

    @property
    def graph_inputs(self) -> tuple[str, ...]:
        prod = self.producer
        return tuple(t for t in self.tensors if t not in prod)

    def io(self, i: int) -> tuple[str, ...]:
        """Distinct tensors op ``i`` needs on chip while it runs (inputs and output)."""
        op = self.ops[i]
        return tuple(dict.fromkeys((*op.inputs, op.output)))

    def op_footprint(self, i: int) -> float:
        """Bytes op ``i`` needs on chip at once."""
        return float(sum(self.sizes[t] for t in self.io(i)))

    def max_op_footprint(self) -> tuple[float, str]:
        """The largest single-op footprint (bytes) and that op's name."""
        return max((self.op_footprint(i), op.name) for i, op in enumerate(self.ops))

    def compulsory_bytes(self) -> float:
        """Traffic no schedule avoids: every graph input loaded once, every output stored once."""
        return float(sum(self.sizes[t] for t in self.graph_inputs) +
                     sum(self.sizes[t] for t in self.outputs))

    def predecessors(self) -> list[set[int]]:
        """Op index -> indices of the ops it reads from."""
        prod = self.producer
        return [{prod[t] for t in op.inputs if t in prod} for op in self.ops]

    def live_bytes(self, order: tuple[int, ...] | list[int]) -> list[float]:
        """Bytes on chip at each step when ``order`` runs without spills: a tensor lives from
        its production (graph inputs: first use) to its last use (outputs without readers:
        their production step only)."""
        pos = {op: t for t, op in enumerate(order)}
        cons, prod = self.consumers, self.producer
        span: dict[str, tuple[int, int]] = {}
        for v in self.tensors:
            uses = [pos[c] for c in cons[v]]
            start = pos[prod[v]] if v in prod else min(uses)
            span[v] = (start, max(uses + [start]))
        return [float(sum(self.sizes[v] for v, (a, b) in span.items() if a <= t <= b))
                for t in range(len(order))]

    def min_peak_footprint(self, max_states: int = 200_000) -> tuple[float, tuple[int, ...]]:
        """The smallest peak of :meth:`live_bytes` over all topological orders, and one order
        reaching it: exact dynamic programming over the sets of executed ops (down-sets).
        Raises :class:`ScheduleError` past ``max_states`` down-sets."""
        n = len(self.ops)
        preds = [sum(1 << p for p in ps) for ps in self.predecessors()]
        cons, prod = self.consumers, self.producer
        cons_mask = {v: sum(1 << c for c in cons[v]) for v in self.tensors}
        touch_mask = {v: cons_mask[v] | ((1 << prod[v]) if v in prod else 0)
                      for v in self.tensors}
        best: dict[int, tuple[float, tuple[int, ...]]] = {0: (0.0, ())}
        frontier = [0]
        for _ in range(n):
            nxt: dict[int, tuple[float, tuple[int, ...]]] = {}
            for s in frontier:
                peak, order = best[s]
                for o in range(n):
                    if s >> o & 1 or (preds[o] & ~s):
                        continue
                    s2 = s | 1 << o
                    io = set(self.io(o))
                    live = sum(self.sizes[v] for v in self.tensors if v in io or
                               (touch_mask[v] & s and cons_mask[v] & ~s2))
                    cand = (max(peak, live), order + (o,))
                    if s2 not in nxt or cand[0] < nxt[s2][0]:
                        nxt[s2] = cand
            if len(nxt) > max_states:
                raise ScheduleError(f"min_peak_footprint: more than {max_states} partial "
                                    "schedules; the DAG is too wide for the exact search")
            best.update(nxt)
            frontier = list(nxt)
        return best[(1 << n) - 1]


def dag_from_einsums(einsums: tuple[Einsum, ...] | list[Einsum], outputs: tuple[str, ...] = ()
                     ) -> Dag:
    """A DAG of Einsums in program order; tensor bytes from each Einsum's rank sizes. A tensor
    an iterative Einsum reads and writes (carried state) is one tensor, not a cycle.
    ``outputs`` default: the last Einsum's output."""
    sizes: dict[str, float] = {}
    ops: list[OpNode] = []
    for e in einsums:
        ins = tuple(dict.fromkeys(t.name for t in e.inputs if t.name != e.output.name))
        for t in (*e.inputs, e.output):
            sizes[t.name] = max(sizes.get(t.name, 0.0), t.nbytes(e.size))
        ops.append(OpNode(e.name, ins, e.output.name))
    outs = tuple(outputs) or (einsums[-1].output.name,)
    return Dag(tuple(ops), sizes, outs)


def dag_from_cascade(casc: Cascade) -> Dag:
    """The DAG of a cascade's Einsums; its ``final_outputs`` leave the chip."""
    return dag_from_einsums(casc.einsums, casc.final_outputs)


@dataclass
class Schedule:
    """A schedule of a :class:`Dag` under a scratchpad ``budget`` (bytes).

    ``order[t]`` is the op run at step ``t``; ``resident[t]`` maps each tensor on chip during step
    ``t`` to its byte address; ``loads[t]`` were read from off chip at the start of step ``t``;
    ``stores[t]`` written off chip at its end. ``traffic_bytes`` = bytes loaded + stored;
    ``solver``: ``ilp`` or ``greedy``; ``status``: ``optimal``, ``time limit (incumbent)``,
    ``heuristic``...; ``solve_s``: wall seconds of the solve, ``solve_cpu_s`` its CPU seconds.
    """

    order: tuple[int, ...]
    resident: list[dict[str, float]]
    loads: list[tuple[str, ...]]
    stores: list[tuple[str, ...]]
    budget: float
    traffic_bytes: float
    compulsory_bytes: float
    solver: str
    status: str
    solve_s: float = 0.0
    solve_cpu_s: float = 0.0
    detail: dict = field(default_factory=dict)

    @property
    def extra_bytes(self) -> float:
        """Non-compulsory (spill and reload) traffic, bytes."""
        return self.traffic_bytes - self.compulsory_bytes

    def summary(self, dag: Dag) -> dict:
        """JSON-able figures of this schedule."""
        return {"solver": self.solver, "status": self.status, "budget_bytes": self.budget,
                "traffic_bytes": self.traffic_bytes, "compulsory_bytes": self.compulsory_bytes,
                "extra_bytes": self.extra_bytes, "solve_s": self.solve_s,
                "solve_cpu_s": self.solve_cpu_s,
                "order": [dag.ops[i].name for i in self.order]}


def check_schedule(dag: Dag, sched: Schedule, tol: float = 1e-6) -> float:
    """Replay ``sched`` and return its traffic in bytes; raise :class:`ScheduleError` at the
    first broken rule: order not a topological permutation; an op whose inputs or output are not
    resident; a tensor appearing on chip without being produced or loaded; a load with no
    off-chip copy (graph input, or stored earlier); a store of a tensor not resident; two resident
    tensors overlapping or one outside ``[0, budget)``; a graph output never stored."""
    n = len(dag.ops)
    if sorted(sched.order) != list(range(n)):
        raise ScheduleError("order is not a permutation of the ops")
    done: set[int] = set()
    preds = dag.predecessors()
    prod = dag.producer
    off_chip = set(dag.graph_inputs)
    stored: set[str] = set()
    traffic = 0.0
    prev: dict[str, float] = {}
    for t, o in enumerate(sched.order):
        if preds[o] - done:
            raise ScheduleError(f"step {t}: op '{dag.ops[o].name}' runs before its producers")
        res = sched.resident[t]
        for v in sched.loads[t]:
            if v not in off_chip:
                raise ScheduleError(f"step {t}: load of '{v}' which has no off-chip copy")
            if v not in res:
                raise ScheduleError(f"step {t}: '{v}' loaded but not resident")
            traffic += dag.sizes[v]
        for v in res:
            if v not in prev and v not in sched.loads[t] and prod.get(v) != o:
                raise ScheduleError(f"step {t}: '{v}' on chip without being produced or loaded")
            if prod.get(v) is not None and prod[v] not in done and prod[v] != o:
                raise ScheduleError(f"step {t}: '{v}' resident before it is produced")
        for v in dag.io(o):
            if v not in res:
                raise ScheduleError(f"step {t}: op '{dag.ops[o].name}' needs '{v}' on chip")
        spans = sorted((a, a + dag.sizes[v], v) for v, a in res.items())
        for a, b, v in spans:
            if a < -tol or b > sched.budget * (1 + tol) + tol:
                raise ScheduleError(f"step {t}: '{v}' at [{a:g}, {b:g}) is outside the "
                                    f"{sched.budget:g} B scratchpad")
        for (_a1, b1, v1), (a2, _b2, v2) in zip(spans, spans[1:], strict=False):
            if a2 < b1 - tol * max(1.0, sched.budget):
                raise ScheduleError(f"step {t}: '{v1}' and '{v2}' overlap")
        for v in res:
            if v in prev and abs(prev[v] - res[v]) > tol * max(1.0, sched.budget) and \
                    v not in sched.loads[t]:
                raise ScheduleError(f"step {t}: '{v}' moved without a reload")
        done.add(o)
        for v in sched.stores[t]:
            if v not in res:
                raise ScheduleError(f"step {t}: store of '{v}' which is not resident")
            traffic += dag.sizes[v]
            off_chip.add(v)
            stored.add(v)
        prev = res
    missing = [v for v in dag.outputs if v not in stored]
    if missing:
        raise ScheduleError(f"graph output '{missing[0]}' is never stored off chip")
    if abs(traffic - sched.traffic_bytes) > tol * max(1.0, traffic):
        raise ScheduleError(f"reported traffic {sched.traffic_bytes:g} B != replayed "
                            f"{traffic:g} B")
    return traffic
