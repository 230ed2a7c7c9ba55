"""The prior heuristic COSMA is compared against: schedule, then allocate, then replace.

The three decisions are taken one after the other, each by the textbook rule, as DNN compilers
without a joint formulation do:

* **order** — the program (trace) order of the ops, a topological order;
* **allocation** — first fit: the lowest scratchpad address with a free contiguous interval;
* **replacement** — Belady's MIN (L. A. Belady, "A study of replacement algorithms for a
  virtual-storage computer", IBM Systems Journal 5(2), 1966): when an op's operand does not fit,
  evict the resident tensor whose next use is furthest in the future (never used again first),
  writing it off chip first when it will be read again and has no off-chip copy.

A tensor is freed after its last reader; a graph output is stored at the end of the step that
writes it. When pinned operands fragment the scratchpad so that no hole fits even after evicting
everything else, the op's resident operands are evicted too and reloaded packed from address 0.

Units: bytes.
"""

from __future__ import annotations

import time

from mappings.dag import Dag, Schedule, ScheduleError


def _first_fit(res: dict[str, float], sizes: dict[str, float], need: float, budget: float
               ) -> float | None:
    """Lowest address of a free interval of ``need`` bytes, or None."""
    addr = 0.0
    for a, v in sorted((a, v) for v, a in res.items()):
        if a - addr >= need:
            return addr
        addr = max(addr, a + sizes[v])
    return addr if budget - addr >= need else None


def schedule_greedy(dag: Dag, budget: float, order: tuple[int, ...] | None = None) -> Schedule:
    """Schedule ``dag`` in ``order`` (default: program order) under ``budget`` bytes with
    first-fit allocation and Belady replacement. Raises :class:`ScheduleError` when one op's
    inputs and output alone exceed the budget."""
    t0, c0 = time.perf_counter(), time.process_time()
    foot, name = dag.max_op_footprint()
    if foot > budget:
        raise ScheduleError(f"scratchpad budget {budget:g} B is below op '{name}' footprint "
                            f"{foot:g} B (its inputs and output must be on chip together)")
    order = tuple(range(len(dag.ops))) if order is None else tuple(order)
    sizes, cons, outs = dag.sizes, dag.consumers, set(dag.outputs)
    pos = {o: t for t, o in enumerate(order)}
    uses = {v: sorted(pos[c] for c in cons[v]) for v in dag.tensors}
    off_chip = set(dag.graph_inputs)
    res: dict[str, float] = {}
    resident: list[dict[str, float]] = []
    loads: list[list[str]] = []
    stores: list[list[str]] = [[] for _ in order]
    traffic = 0.0

    def next_use(v: str, t: int) -> float:
        later = [u for u in uses[v] if u >= t]
        return float(later[0]) if later else float("inf")

    def evict(v: str, t: int) -> None:
        nonlocal traffic
        if v not in off_chip and next_use(v, t) != float("inf"):
            stores[t - 1].append(v)   # spill: written off chip at the end of the last step
            off_chip.add(v)
            traffic += sizes[v]
        del res[v]

    def place(v: str, t: int, pinned: set[str]) -> None:
        while True:
            addr = _first_fit(res, sizes, sizes[v], budget)
            if addr is not None:
                res[v] = addr
                return
            victims = [u for u in res if u not in pinned]
            if not victims:   # fragmented by pinned operands: evict them, reload packed
                for u in list(res):
                    evict(u, t)
                for u in [u for u in dag.io(order[t]) if u in pinned and u != v]:
                    res[u] = _first_fit(res, sizes, sizes[u], budget)  # type: ignore
                    if u not in step_loads:   # loaded once, at its final address
                        step_loads.append(u)
                        traffic_add(u)
                continue
            evict(max(victims, key=lambda u: (next_use(u, t), sizes[u])), t)

    def traffic_add(u: str) -> None:
        nonlocal traffic
        traffic += sizes[u]

    for t, o in enumerate(order):
        # tensors dead after the previous step leave the scratchpad
        for v in [v for v in res if next_use(v, t) == float("inf")]:
            evict(v, t)
        step_loads: list[str] = []
        io = dag.io(o)
        pinned: set[str] = {v for v in io if v in res}
        for v in io:
            if v in res:
                continue
            pinned.add(v)
            place(v, t, pinned)
            if v != dag.ops[o].output:
                step_loads.append(v)
                traffic += sizes[v]
        if dag.ops[o].output in outs:
            stores[t].append(dag.ops[o].output)
            off_chip.add(dag.ops[o].output)
            traffic += sizes[dag.ops[o].output]
        resident.append(dict(res))
        loads.append(step_loads)
    return Schedule(order, resident, [tuple(x) for x in loads], [tuple(x) for x in stores],
                    float(budget), traffic, dag.compulsory_bytes(), "greedy", "heuristic",
                    time.perf_counter() - t0, time.process_time() - c0,
                    {"heuristic": "program order + first fit + Belady MIN"})
