"""COSMA-style joint scheduling, scratchpad allocation and tensor replacement as one ILP.

After Y. Li, A. Gupta, S. Malik, "Combined Scheduling, Memory Allocation and Tensor Replacement
for Minimizing Off-Chip Data Accesses of DNN Accelerators" (arXiv:2311.18246, 2023). Solved with
HiGHS through :func:`scipy.optimize.milp`.

Steps ``t = 0..T-1`` run one op each. Binary variables:

* ``X[o,t]`` — op ``o`` runs at step ``t`` (each op once, one op per step, producers first);
* ``R[v,t]`` — tensor ``v`` is on chip during step ``t`` (an op's inputs and output must be);
  ``R[v,t] <= R[v,t-1] + L[v,t] + X[producer(v),t]``: it arrives by being written or loaded;
  a tensor is dropped once no reader is left (``R[v,t] <= X[p,t] + sum of X[reader, >= t]``);
* ``L[v,t]`` — ``v`` is loaded at the start of step ``t``; needs an off-chip copy: a graph
  input, or a store at an earlier step (``L[v,t] <= sum_{t'<t} S[v,t']``);
* ``S[v,t]`` — ``v`` is written off chip at the end of step ``t`` (needs ``R[v,t]``); every
  graph output is stored at least once;
* ``Z`` — which of two tensors that may share the chip lies below the other (see Addresses);
  pairs where one is dead before the other is written in every order are left out.

Objective: bytes loaded + bytes stored (compulsory traffic included, so the optimum minus
:meth:`Dag.compulsory_bytes` is the non-compulsory traffic).

Addresses (``relocate=True``, the default): continuous ``A[v,t]`` per tensor and step, held
fixed while the tensor stays on chip (``|A[v,t] - A[v,t-1]| <= 2 - R[v,t-1] - R[v,t] + L[v,t]``,
so only a reload may move it), and per pair and step a binary ``Z[u,v,t]`` choosing which lies
below: ``A[u,t] + size_u <= A[v,t] + (1 - Z) + (2 - R[u,t] - R[v,t])`` and the mirror.
``relocate=False`` keeps one address per tensor for all its residencies (``Z[u,v]`` and a
co-residence binary per pair; smaller, but may be infeasible where relocation is not). If the
ILP's answer is worse than the greedy baseline's (time limit) or missing, the greedy schedule is
kept as the incumbent and ``status`` says so.

Sizes are scaled by the budget inside the model (numerics, big-M = 1); addresses are
recomputed exactly in bytes from the solved below-relations (:func:`_extract`).
Units: bytes, seconds.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from mappings.dag import Dag, Schedule, ScheduleError, check_schedule
from mappings.schedule_greedy import schedule_greedy

DEFAULT_TIME_LIMIT_S = 30.0


class _Model:
    """Sparse constraint rows built one at a time."""

    def __init__(self) -> None:
        self.n = 0
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[int] = []
        self.cost: list[float] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, lb: float = 0.0, ub: float = 1.0, integer: bool = True, cost: float = 0.0
            ) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(1 if integer else 0)
        self.cost.append(cost)
        self.n += 1
        return self.n - 1

    def row(self, coefs: dict[int, float], lo: float, hi: float) -> None:
        self.rows.append((coefs, lo, hi))

    def solve(self, time_limit: float):
        r, c, d = [], [], []
        lo, hi = [], []
        for i, (coefs, a, b) in enumerate(self.rows):
            for j, x in coefs.items():
                r.append(i)
                c.append(j)
                d.append(x)
            lo.append(a)
            hi.append(b)
        a = coo_matrix((d, (r, c)), shape=(len(self.rows), self.n)).tocsr()
        return milp(np.array(self.cost), constraints=LinearConstraint(a, lo, hi),
                    integrality=np.array(self.integer),
                    bounds=Bounds(np.array(self.lb), np.array(self.ub)),
                    options={"time_limit": float(time_limit), "disp": False})


def _may_coexist(dag: Dag) -> list[tuple[str, str]]:
    """Pairs of tensors that some schedule can hold on chip together: not when every reader
    of one is an ancestor of the other's producer (it is dead before the other is born)."""
    preds = dag.predecessors()
    n = len(dag.ops)
    anc: list[set[int]] = [set() for _ in range(n)]
    for i in range(n):
        for p in preds[i]:
            anc[i] |= anc[p] | {p}
    prod, cons = dag.producer, dag.consumers
    outs = set(dag.outputs)

    def dead_before(u: str, v: str) -> bool:
        if v not in prod:
            return False
        readers = list(cons[u]) + ([prod[u]] if (u in outs and u in prod) else [])
        return bool(readers) and all(c in anc[prod[v]] for c in readers)

    ts = dag.tensors
    return [(u, v) for i, u in enumerate(ts) for v in ts[i + 1:]
            if not dead_before(u, v) and not dead_before(v, u)]


def schedule_ilp(dag: Dag, budget: float, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                 keep_better_greedy: bool = True, relocate: bool = True) -> Schedule:
    """The least-traffic schedule of ``dag`` under ``budget`` bytes (operator order, addresses,
    spills). Stops after ``time_limit_s`` seconds with HiGHS's best incumbent (status ``time
    limit (incumbent)``). Raises :class:`ScheduleError` when one op's inputs and output alone
    exceed the budget, or when the solver finds no schedule in time and none is known."""
    foot, name = dag.max_op_footprint()
    if foot > budget:
        raise ScheduleError(f"scratchpad budget {budget:g} B is below op '{name}' footprint "
                            f"{foot:g} B (its inputs and output must be on chip together)")
    t0, c0 = time.perf_counter(), time.process_time()
    T = len(dag.ops)
    ts = dag.tensors
    size = {v: dag.sizes[v] / budget for v in ts}
    prod, cons, outs = dag.producer, dag.consumers, set(dag.outputs)
    inputs = set(dag.graph_inputs)
    m = _Model()
    X = {(o, t): m.var() for o in range(T) for t in range(T)}
    R = {(v, t): m.var() for v in ts for t in range(T)}
    L = {(v, t): m.var(cost=size[v]) for v in ts for t in range(T)}
    S = {(v, t): m.var(cost=size[v]) for v in ts for t in range(T)}
    for o in range(T):
        m.row({X[o, t]: 1 for t in range(T)}, 1, 1)
    for t in range(T):
        m.row({X[o, t]: 1 for o in range(T)}, 1, 1)
    for c, ps in enumerate(dag.predecessors()):
        for p in ps:      # c done by t  =>  p done before t
            for t in range(T):
                coefs = {X[c, k]: 1.0 for k in range(t + 1)}
                for k in range(t):
                    coefs[X[p, k]] = coefs.get(X[p, k], 0.0) - 1.0
                m.row(coefs, -np.inf, 0)
    for o in range(T):
        for v in dag.io(o):
            for t in range(T):
                m.row({R[v, t]: 1, X[o, t]: -1}, 0, np.inf)
    for v in ts:
        p = prod.get(v)
        for t in range(T):
            coefs = {R[v, t]: 1.0, L[v, t]: -1.0}
            if t:
                coefs[R[v, t - 1]] = -1.0
            if p is not None:
                coefs[X[p, t]] = coefs.get(X[p, t], 0.0) - 1.0
            m.row(coefs, -np.inf, 0)
            m.row({L[v, t]: 1, R[v, t]: -1}, -np.inf, 0)
            m.row({S[v, t]: 1, R[v, t]: -1}, -np.inf, 0)
            if v not in inputs:   # a load needs an earlier store
                coefs = {L[v, t]: 1.0}
                for k in range(t):
                    coefs[S[v, k]] = -1.0
                m.row(coefs, -np.inf, 0)
            # resident only while a reader is left (or at the output's own step)
            coefs = {R[v, t]: 1.0}
            for c in cons[v]:
                for k in range(t, T):
                    coefs[X[c, k]] = coefs.get(X[c, k], 0.0) - 1.0
            if p is not None:
                coefs[X[p, t]] = coefs.get(X[p, t], 0.0) - 1.0
            m.row(coefs, -np.inf, 0)
        if v in outs:
            m.row({S[v, t]: 1 for t in range(T)}, 1, np.inf)
    for t in range(T):
        m.row({R[v, t]: size[v] for v in ts}, -np.inf, 1.0)
    pairs = _may_coexist(dag)
    Z: dict = {}
    if relocate:   # one address per tensor and step; it may change only at a (re)load
        A = {(v, t): m.var(0.0, max(0.0, 1.0 - size[v]), integer=False)
             for v in ts for t in range(T)}
        for v in ts:
            for t in range(1, T):
                # resident at t-1 and t, not reloaded at t  =>  same address
                for sign in (1.0, -1.0):
                    m.row({A[v, t]: sign, A[v, t - 1]: -sign, R[v, t - 1]: 1, R[v, t]: 1,
                           L[v, t]: -1}, -np.inf, 2)
        for u, v in pairs:
            for t in range(T):
                z = Z[u, v, t] = m.var()
                # u below v:  A_u + s_u <= A_v + (1 - Z) + (2 - R_u - R_v)
                m.row({A[u, t]: 1, A[v, t]: -1, z: 1, R[u, t]: 1, R[v, t]: 1}, -np.inf,
                      3 - size[u])
                m.row({A[v, t]: 1, A[u, t]: -1, z: -1, R[u, t]: 1, R[v, t]: 1}, -np.inf,
                      2 - size[v])
    else:          # one address per tensor for all its residencies
        A = {v: m.var(0.0, max(0.0, 1.0 - size[v]), integer=False) for v in ts}
        for u, v in pairs:
            z, co = m.var(), m.var()
            for t in range(T):
                Z[u, v, t] = z
                m.row({co: 1, R[u, t]: -1, R[v, t]: -1}, -1, np.inf)
            # u below v:  A_u + s_u <= A_v + (1 - Z) + (1 - CO)
            m.row({A[u]: 1, A[v]: -1, z: 1, co: 1}, -np.inf, 2 - size[u])
            # v below u:  A_v + s_v <= A_u + Z + (1 - CO)
            m.row({A[v]: 1, A[u]: -1, z: -1, co: 1}, -np.inf, 1 - size[v])
    build_s = time.perf_counter() - t0
    res = m.solve(time_limit_s)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    detail = {"build_s": build_s, "variables": m.n, "constraints": len(m.rows), "pairs": len(pairs),
              "highs_status": int(res.status), "highs_message": str(res.message),
              "mip_gap": float(getattr(res, "mip_gap", float("nan")) or 0.0)}
    sched: Schedule | None = None
    if res.x is not None:
        status = "optimal" if res.status == 0 else "time limit (incumbent)"
        sched = _extract(dag, budget, res.x, X, R, L, S, Z, pairs, status, wall, cpu, detail)
    if keep_better_greedy:
        try:
            greedy = schedule_greedy(dag, budget)
        except ScheduleError:
            greedy = None
        if greedy is not None and (sched is None or greedy.traffic_bytes <
                                   sched.traffic_bytes - 1e-9 * budget):
            detail["ilp_traffic_bytes"] = sched.traffic_bytes if sched else None
            greedy.solver, greedy.status = "ilp", "greedy incumbent kept (ILP: " + (
                sched.status if sched else str(res.message)) + ")"
            greedy.solve_s, greedy.solve_cpu_s = wall, cpu
            greedy.detail = {**detail, "source": "greedy"}
            return greedy
    if sched is None:
        raise ScheduleError(f"ILP found no schedule under {budget:g} B within "
                            f"{time_limit_s:g} s ({res.message})")
    return sched


def _extract(dag: Dag, budget: float, x, X, R, L, S, Z, pairs, status: str, wall: float,
             cpu: float, detail: dict) -> Schedule:
    """Turn a solution vector into a :class:`Schedule` with exact byte addresses: each
    residency segment (a run of steps on chip without a reload) is placed at the lowest address
    its solved below-relations allow (a longest path), so float tolerances never overlap."""
    T = len(dag.ops)
    ts = dag.tensors
    on = lambda k: x[k] > 0.5  # noqa: E731
    order = tuple(next(o for o in range(T) if on(X[o, t])) for t in range(T))
    live = [[v for v in ts if on(R[v, t])] for t in range(T)]
    loads = [tuple(v for v in live[t] if on(L[v, t])) for t in range(T)]
    stores = [tuple(v for v in live[t] if on(S[v, t])) for t in range(T)]
    seg: dict[tuple[str, int], int] = {}
    n_seg = 0
    for v in ts:
        for t in range(T):
            if v in live[t]:
                if t and (v, t - 1) in seg and v not in loads[t]:
                    seg[v, t] = seg[v, t - 1]
                else:
                    seg[v, t] = n_seg
                    n_seg += 1
    seg_size = {seg[k]: dag.sizes[k[0]] for k in seg}
    below: dict[int, set[int]] = {i: set() for i in range(n_seg)}
    for t in range(T):
        s = set(live[t])
        for u, v in pairs:
            if u in s and v in s:
                a, b = seg[u, t], seg[v, t]
                if on(Z[u, v, t]):
                    below[b].add(a)
                else:
                    below[a].add(b)
    addr: dict[int, float] = {}

    def place(i: int, stack: frozenset = frozenset()) -> float:
        if i in addr:
            return addr[i]
        if i in stack:
            raise ScheduleError("ILP solution has a cyclic address order")
        addr[i] = max([place(j, stack | {i}) + seg_size[j] for j in below[i]] + [0.0])
        return addr[i]

    for i in range(n_seg):
        place(i)
    resident = [{v: addr[seg[v, t]] for v in live[t]} for t in range(T)]
    traffic = float(sum(dag.sizes[v] for t in range(T) for v in (*loads[t], *stores[t])))
    sched = Schedule(order, resident, loads, stores, float(budget), traffic,
                     dag.compulsory_bytes(), "ilp", status, wall, cpu,
                     {**detail, "source": "ilp"})
    check_schedule(dag, sched)
    return sched


def schedule(dag: Dag, budget: float, method: str = "ilp",
             time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> Schedule:
    """Entry point for device models (NPU fused cascades, dataflow fused kernels): ``method``
    ``ilp`` (COSMA-style, best incumbent after ``time_limit_s``) or ``greedy`` (program order,
    first fit, Belady)."""
    if method == "ilp":
        return schedule_ilp(dag, budget, time_limit_s)
    if method == "greedy":
        return schedule_greedy(dag, budget)
    raise ScheduleError(f"unknown schedule method '{method}' (expected ilp or greedy)")


def schedule_fused(einsums, outputs: tuple[str, ...], budget: float, method: str = "ilp",
                   time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> tuple[Dag, Schedule]:
    """Schedule a fused kernel given as Einsums in program order (e.g. a dataflow device's
    fused layer, whose ``outputs`` leave the chip) in ``budget`` bytes of on-chip memory;
    returns the DAG and its :class:`Schedule` (``traffic_bytes`` = compulsory + spills)."""
    from mappings.dag import dag_from_einsums

    dag = dag_from_einsums(tuple(einsums), tuple(outputs))
    return dag, schedule(dag, budget, method, time_limit_s)
