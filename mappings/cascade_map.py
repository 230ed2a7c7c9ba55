"""Attention cascades mapped onto a 2D PE array plus a 1D PE array (FuseMax, FLAT).

An Einsum cascade (:mod:`workloads.cascades`) runs as *iterations*: the query rank ``p`` is cut
into blocks of ``P`` queries, and when the cascade splits the key rank into an iterative tile rank
(``m1``, FuseMax's 1-pass cascade) each block walks its ``m1`` tiles one iteration at a time; a
cascade without one (FLAT's 3-pass) does a whole block per iteration. Einsums that lack ``m1`` in a
cascade that has it (the final division) run once per block after its last tile.

A :class:`CascadeMapping` fixes the choices the mapper (:func:`map_cascade`) searches:

* ``units`` — which array runs each Einsum class (contractions, tile-sized element-wise Einsums
  that carry a key rank, per-row running statistics): the 2D array (``rows x cols`` PEs) only
  for Einsums whose operators are in ``npu.array_ops``, or the 1D array (``vector_lanes`` PEs).
  Putting the tile-sized softmax on the 2D array and the running statistics on the 1D array is
  FuseMax's *interleave*;
* ``depth`` — iterations in flight: 1 runs one iteration at a time, 2 lets iteration ``i+1`` use
  an array while iteration ``i`` still runs on the other (FuseMax's *epoch pipeline*; FLAT's
  overlap of row blocks), at ``depth`` times the buffer space; with ``depth >= 2`` DRAM transfers
  overlap compute, with 1 they add to it;
* ``block`` — ``P``, queries per block (K and V are re-read once per block);
* ``policy`` — intermediates a later pass reads (``pass_analysis``: FLAT's QK and SN rows):
  ``hold`` them in the buffer, spilling what does not fit (written once, read by each later
  consumer), or ``recompute`` them in each pass that needs them (re-reading their inputs).

Spatial unrolling per Einsum: the cheapest pair of its ranks on the 2D array's rows and columns
(one rank over the 1D lanes), each folded ``ceil(size / edge)`` times. A ``ws`` (weight
stationary) array must put a contraction's reduced rank on its rows and a rank of its second
operand on its columns (FLAT: the head dimension on one edge); other dataflows let the mapper
choose. Cycles per point: a MAC 1; element-wise work the sum of its operators' ``npu.op_cycles``
(unlisted: 1; FuseMax's exp = 6, so ``exp(x - m)`` = 7).

Time: the iterations are list-scheduled (greedy, earliest start, in-order priority) on the two
arrays with their data dependences (running statistics depend on the previous tile's) over a
window of blocks and tiles; the steady-state block and tile intervals extend it to the whole
cascade. Traffic: Q and the output once, K and V once per block and pass that reads them, spills.
Buffer accesses (``energy.memory.sram`` per bit): data crossing between the arrays or passes, array
operands re-read per fold of a spatial rank they do not carry (operands without a key rank stay
in the PEs over a block's tiles), and every DRAM byte. Operators at ``npu.op_energy`` (``exp`` =
``op_cycles.exp`` MACs; ``sub`` an add, ``mul`` a MAC). Every tensor is stored at ``npu.dtype``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache

from arch import Arch
from workloads.einsum import Cascade, Einsum, dtype_bytes
from workloads.passes import pass_analysis

#: ``Op.op_class`` of a fused attention cascade that the NPU device maps with :func:`map_cascade`
CASCADE_CLASS = "mapped_cascade"
UNITS = ("2d", "1d")
CLASSES = ("contraction", "tile", "row")
OUTER = ("b", "h")      # independent (batch, head) ranks
QUERY = "p"
KEY = "m"
WINDOW_TILES = 6        # m1 iterations simulated per block before extrapolating
WINDOW_BLOCKS = 3


@dataclass(frozen=True)
class CascadeArch:
    """The 2D + 1D array view of an ``npu`` arch. Bandwidth B/s, capacities B, energies J."""

    name: str
    rows: int
    cols: int
    lanes: int
    clock: float
    dram_bw: float
    buffer: float
    word: float
    dataflow: str
    array_ops: frozenset[str]
    op_cycles: tuple[tuple[str, float], ...]
    op_energy: tuple[tuple[str, float], ...]
    sram_j_per_byte: float
    dram_j_per_byte: float
    static_power: float

    def cycles_of(self, op: str) -> float:
        return dict(self.op_cycles).get(op, 1.0)

    def energy_of(self, op: str) -> float:
        table = dict(self.op_energy)
        mac = table["mac"]
        add = table.get("add", mac / 2)
        derived = {"mac": mac, "add": add, "sub": add, "max": table.get("max", add),
                   "mul": mac, "div": table.get("div", add), "exp": self.cycles_of("exp") * mac}
        return table.get(op, derived.get(op, add)) if op != "exp" else derived["exp"]


def cascade_arch(arch: Arch) -> CascadeArch:
    """The cascade view of an ``npu`` arch (one 2D array, the vector lanes as the 1D array)."""
    n = arch.npu
    e = arch.energy
    per_flop = e.compute.get(n.dtype) or next(iter(e.compute.values()))
    op_energy = {"mac": 2 * per_flop, "add": per_flop}
    op_energy.update(n.op_energy)
    bw = arch.memory["dram"].bandwidth * arch.memory["dram"].efficiency
    return CascadeArch(arch.name, n.array_rows, n.array_cols, n.vector_units * n.vector_lanes,
                       n.clock, math.inf if n.dram_unlimited else bw,
                       arch.memory["sram"].capacity, dtype_bytes(n.dtype), n.dataflow,
                       frozenset(n.array_ops) | {"mac"}, tuple(sorted(n.op_cycles.items())),
                       tuple(sorted(op_energy.items())), e.memory.get("sram", 0.0) * 8,
                       e.memory.get("dram", 0.0) * 8, e.static_power)


@dataclass(frozen=True)
class CascadeMapping:
    """The mapper's choices (see the module docstring)."""

    units: tuple[tuple[str, str], ...]     # (class, unit)
    depth: int
    block: int
    policy: str = "hold"

    def unit(self, cls: str) -> str:
        return dict(self.units)[cls]

    def describe(self) -> str:
        u = ", ".join(f"{c}->{x}" for c, x in self.units)
        return f"{u}; depth {self.depth}; block {self.block}; cross-pass {self.policy}"


@dataclass
class CascadeCost:
    """A mapped cascade: seconds, cycles, energy (J by component), DRAM bytes, 2D use."""

    mapping: CascadeMapping
    latency: float
    cycles: float
    compute_cycles: float
    dram_bytes: float
    energy: dict[str, float] = field(default_factory=dict)
    util2d: float = 0.0
    busy: dict[str, float] = field(default_factory=dict)
    spilled: float = 0.0
    tensor_dram: dict[str, float] = field(default_factory=dict)
    evaluated: int = 0

    @property
    def energy_total(self) -> float:
        return float(sum(self.energy.values()))


# --- cascade structure ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Task:
    name: str            # Einsum name, "@k" when recomputed for pass k
    einsum: Einsum
    cls: str
    epilogue: bool
    deps: tuple[str, ...]          # same iteration
    prev_deps: tuple[str, ...]     # previous iteration of the block (iterative state)
    pass_no: int


def _family(casc: Cascade) -> tuple[set[str], set[str]]:
    """(key-rank family, iterative ranks) of a cascade."""
    sizes = casc.size
    fam = {r for r in sizes if r == KEY or (r.startswith(KEY) and r[len(KEY):].isdigit())}
    it = {r for e in casc.einsums for r in e.iterative}
    return fam, it


def einsum_class(e: Einsum, key_ranks: set[str], iterative: set[str]) -> str:
    """``contraction``, ``tile`` (element-wise over a key rank) or ``row`` (statistics)."""
    if e.is_contraction:
        return "contraction"
    return "tile" if any(r in key_ranks and r not in iterative for r in e.ranks) else "row"


def cross_pass(casc: Cascade) -> dict[str, list[str]]:
    """Intermediates (with a key rank) that a later pass reads: name -> consuming Einsums."""
    fam, it = _family(casc)
    rep = pass_analysis(casc, KEY)
    producer = {e.output.name: e for e in casc.einsums}
    out: dict[str, list[str]] = {}
    for e in casc.einsums:
        for t in e.inputs:
            p = producer.get(t.name)
            if p is None or p is e:
                continue
            if (rep.einsum_pass.get(e.name, 0) > rep.einsum_pass.get(p.name, 0) > 0 and
                    any(r in fam and r not in it for r in t.ranks)):
                out.setdefault(t.name, []).append(e.name)
    return out


def _tasks(casc: Cascade, policy: str) -> list[_Task]:
    """One iteration's tasks in priority order (recomputed producers before their consumers)."""
    fam, it = _family(casc)
    rep = pass_analysis(casc, KEY)
    xp = cross_pass(casc)
    order = {e.name: i for i, e in enumerate(casc.einsums)}
    producer = {e.output.name: e for e in casc.einsums}
    tasks: list[_Task] = []
    made: set[str] = set()

    def dep_of(t_name: str, consumer: Einsum, k: int) -> str:
        p = producer[t_name]
        if policy == "recompute" and t_name in xp and rep.einsum_pass[p.name] < k:
            return add(p, k, f"{p.name}@{k}")
        return p.name

    def add(e: Einsum, k: int, name: str) -> str:
        if name in made:
            return name
        deps, prev = [], []
        for t in e.inputs:
            if t.name not in producer:
                continue
            p = producer[t.name]
            if order[p.name] < order[e.name]:
                deps.append(dep_of(t.name, e, k))
            elif it:                     # state carried from the previous tile
                prev.append(p.name)
        epi = bool(it) and not any(r in it for r in e.ranks)
        tasks.append(_Task(name, e, einsum_class(e, fam, it), epi, tuple(dict.fromkeys(deps)),
                           tuple(dict.fromkeys(prev)), k))
        made.add(name)
        return name

    for e in casc.einsums:
        add(e, rep.einsum_pass.get(e.name, 0), e.name)
    return tasks


def _iter_sizes(e: Einsum, block: int, iterative: set[str], tile: int) -> dict[str, int]:
    """Rank sizes one iteration of ``e`` covers (``m`` itself streams in ``tile`` slices for
    the footprint; it stays whole here)."""
    s = {}
    for r, n in e.size.items():
        s[r] = 1 if (r in OUTER or r in iterative) else (min(block, n) if r == QUERY else n)
    return s


def _per_point(e: Einsum, arch: CascadeArch) -> float:
    if e.is_contraction:
        return 1.0
    counts = e.op_counts
    return sum(n * arch.cycles_of(op) for op, n in counts.items()) / max(e.points, 1)


def _ops_of(e: Einsum) -> set[str]:
    return {"mac"} if e.is_contraction else set(e.op_counts)


def spatial_cycles(e: Einsum, sizes: dict[str, int], unit: str, arch: CascadeArch
                   ) -> tuple[float, tuple[str, ...]]:
    """Cycles of one iteration of ``e`` on ``unit`` under its cheapest spatial unrolling, and
    that unrolling (row rank, column rank) or (lane rank,)."""
    ranks = [r for r in sizes if sizes[r] > 1] or list(sizes)[:1]
    per = _per_point(e, arch)
    best: tuple[float, tuple[str, ...]] | None = None
    if unit == "1d":
        cands: list[tuple[str, ...]] = [(r,) for r in ranks]
        edges = (arch.lanes,)
    else:
        edges = (arch.rows, arch.cols)
        if e.is_contraction and arch.dataflow == "ws":
            a, b = e.inputs
            red = [r for r in e.reduced_ranks if r in ranks] or list(e.reduced_ranks)
            wonly = [r for r in b.ranks if r not in a.ranks and r in ranks] or ["_"]
            cands = [(x, y) for x in red for y in wonly]
        else:
            cands = [(x, y) for x in ranks for y in ranks if x != y] + [(x, "_") for x in ranks]
    for sp in cands:
        edge_of: dict[str, int] = {}   # each unrolled rank's array edge (the first naming it)
        for s, edge in zip(sp, edges, strict=False):
            edge_of.setdefault(s, edge)
        cyc = per
        for r, n in sizes.items():
            cyc *= math.ceil(n / edge_of.get(r, 1))
        if best is None or cyc < best[0]:
            best = (cyc, sp)
    assert best is not None
    return best


def _schedule(tasks: list[_Task], durs: dict[str, tuple[str, float]], blocks: int, tiles: int,
              depth: int) -> float:
    """Makespan (cycles) of ``blocks`` blocks of ``tiles`` iterations on the two arrays with
    ``depth`` iterations in flight: the shorter of two list schedules, *earliest start first*
    (an idle array takes whatever is ready, e.g. the next row block's QK while the softmax of
    this one runs) and *oldest first* (an array waits for the oldest iteration's next task,
    e.g. SLN for this tile's running max instead of starting the next tile's QK)."""
    return min(_list_schedule(tasks, durs, blocks, tiles, depth, greedy)
               for greedy in (True, False))


def _list_schedule(tasks: list[_Task], durs: dict[str, tuple[str, float]], blocks: int,
                   tiles: int, depth: int, greedy: bool) -> float:
    body = [t for t in tasks if not t.epilogue]
    epi = [t for t in tasks if t.epilogue]
    jobs: list[tuple[int, int, str, float, list[int]]] = []   # (iteration, prio, unit, dur, deps)
    index: dict[tuple[int, str], int] = {}
    it_jobs: list[list[int]] = []
    n_iter = 0
    for _b in range(blocks):
        for k in range(tiles):
            mine = []
            group = body + (epi if k == tiles - 1 else [])
            for prio, t in enumerate(group):
                deps = [index[(n_iter, d)] for d in t.deps]
                if k > 0:
                    deps += [index[(n_iter - 1, d)] for d in t.prev_deps]
                unit, dur = durs[t.name]
                index[(n_iter, t.name)] = len(jobs)
                mine.append(len(jobs))
                jobs.append((n_iter, prio, unit, dur, deps))
            it_jobs.append(mine)
            n_iter += 1
    n = len(jobs)
    end = [0.0] * n
    done = [False] * n
    waiting = [len(j[4]) for j in jobs]
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, j in enumerate(jobs):
        for d in j[4]:
            succ[d].append(i)
    left = [len(m) for m in it_jobs]
    it_end = [0.0] * n_iter
    free = {u: 0.0 for u in UNITS}
    ready = [i for i in range(n) if waiting[i] == 0]
    # a job is ready once its dependencies are done: when they end is then fixed
    deps_end = [0.0] * n
    scheduled = 0
    while scheduled < n:
        best = None
        for i in ready:
            it, prio, unit, dur, _ = jobs[i]
            gate = it - depth
            if gate >= 0 and left[gate]:
                continue
            start = max(free[unit], deps_end[i], it_end[gate] if gate >= 0 else 0.0)
            key = (start, it, prio) if greedy else (it, prio, start)
            if best is None or key < best[0]:
                best = (key, i, start)
        assert best is not None, "cascade schedule deadlocked"
        _, i, start = best
        it, _, unit, dur, _ = jobs[i]
        end[i] = start + dur
        free[unit] = end[i]
        done[i] = True
        ready.remove(i)
        scheduled += 1
        left[it] -= 1
        if not left[it]:
            it_end[it] = max(end[j] for j in it_jobs[it])
        for s in succ[i]:
            waiting[s] -= 1
            if waiting[s] == 0:
                deps_end[s] = max((end[d] for d in jobs[s][4]), default=0.0)
                ready.append(s)
    return max(end) if end else 0.0


def _total_cycles(tasks, durs, n_blocks: int, n_tiles: int, depth: int) -> float:
    """Cycles of ``n_blocks`` blocks of ``n_tiles`` iterations: the shorter of the two list
    schedules (:func:`_schedule`), each simulated on a window and extended by its steady-state
    tile and block intervals (exact when the window covers everything)."""
    return min(_extrapolated(tasks, durs, n_blocks, n_tiles, depth, greedy)
               for greedy in (True, False))


def _extrapolated(tasks, durs, n_blocks: int, n_tiles: int, depth: int, greedy: bool) -> float:
    k = min(n_tiles, WINDOW_TILES)

    def sched(blocks: int, tiles: int) -> float:
        return _list_schedule(tasks, durs, blocks, tiles, depth, greedy)

    def block_interval(kk: int) -> float:
        return sched(3, kk) - sched(2, kk)

    if n_blocks <= WINDOW_BLOCKS and n_tiles <= k:
        return sched(n_blocks, n_tiles)
    first = sched(1, k)
    b_k = block_interval(k)
    tile_iv = 0.0
    if n_tiles > k:
        tile_iv = (b_k - block_interval(k - 2)) / 2.0
    b_n = b_k + (n_tiles - k) * tile_iv
    return first + (n_tiles - k) * tile_iv + (n_blocks - 1) * b_n


# --- evaluation ----------------------------------------------------------------------------------
def evaluate(casc: Cascade, arch: CascadeArch, mapping: CascadeMapping) -> CascadeCost | None:
    """Cost of one mapping (None when it does not fit the buffer or an array cannot run it)."""
    fam, it = _family(casc)
    size = casc.size
    tile = size.get("m0", arch.rows)
    tasks = _tasks(casc, mapping.policy)
    for t in tasks:
        if mapping.unit(t.cls) == "2d" and not _ops_of(t.einsum) <= arch.array_ops:
            return None
    word = arch.word
    n_q = size[QUERY]
    block = min(mapping.block, n_q)
    outer = math.prod(size.get(r, 1) for r in OUTER)
    n_blocks = outer * math.ceil(n_q / block)
    n_tiles = math.prod(size[r] for r in it) if it else 1
    xp = cross_pass(casc)
    producer = {e.output.name: e for e in casc.einsums}
    external = {t.name: t for t in casc.external_inputs}

    # durations and spatial unrollings per task (one iteration)
    durs: dict[str, tuple[str, float]] = {}
    useful2d = 0.0
    busy = {u: 0.0 for u in UNITS}
    spatial: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {}
    for t in tasks:
        unit = mapping.unit(t.cls)
        sz = _iter_sizes(t.einsum, block, it, tile)
        cyc, sp = spatial_cycles(t.einsum, sz, unit, arch)
        durs[t.name] = (unit, cyc)
        spatial[t.name] = (sp, sz)
        reps = n_blocks if t.epilogue else n_blocks * n_tiles
        busy[unit] += cyc * reps
        if unit == "2d":
            useful2d += math.prod(sz.values()) * _per_point(t.einsum, arch) * reps

    # buffer footprint: streamed tiles and held state per iteration in flight, held rows
    stream_b = held_b = cross_b = 0.0
    seen: set[str] = set()
    for t in tasks:
        for ref in (*t.einsum.inputs, t.einsum.output):
            if ref.name in seen:
                continue
            seen.add(ref.name)
            sz = _iter_sizes(t.einsum, block, it, tile)
            n_el = math.prod(sz.get(r, 1) for r in ref.ranks)
            if ref.name in xp and mapping.policy == "hold":
                cross_b += n_el * word
            elif KEY in ref.ranks and (ref.name not in xp or mapping.policy == "recompute"):
                stream_b += n_el / sz.get(KEY, 1) * min(tile, sz.get(KEY, 1)) * word
            else:
                held_b += n_el * word
    fixed = mapping.depth * (stream_b + held_b)
    if fixed > arch.buffer:
        return None
    spilled = 0.0
    if cross_b:
        avail = arch.buffer - fixed
        spilled = max(0.0, 1.0 - avail / (mapping.depth * cross_b))

    # DRAM traffic over the whole cascade
    tensor_dram: dict[str, float] = {}
    read_in: set[tuple[str, int]] = set()
    for t in tasks:
        for ref in t.einsum.inputs:
            if ref.name in external:
                read_in.add((ref.name, t.pass_no))
    for name, _k in read_in:
        ref = external[name]
        whole = ref.elements(size) * word
        per = whole * (math.ceil(n_q / block) if QUERY not in ref.ranks else 1)
        tensor_dram[name] = tensor_dram.get(name, 0.0) + per
    for name in casc.final_outputs:
        tensor_dram[name] = tensor_dram.get(name, 0.0) + producer[name].output.elements(
            size) * word
    if spilled and mapping.policy == "hold":
        for name, users in xp.items():
            moved = spilled * producer[name].output.elements(size) * word * (1 + len(users))
            tensor_dram[name] = tensor_dram.get(name, 0.0) + moved
    dram = sum(tensor_dram.values())

    # time
    compute = _total_cycles(tasks, durs, n_blocks, n_tiles, mapping.depth)
    t_dram = dram / arch.dram_bw * arch.clock if dram and not math.isinf(arch.dram_bw) else 0.0
    cycles = max(compute, t_dram) if mapping.depth >= 2 else compute + t_dram
    latency = cycles / arch.clock

    # energy: operators, buffer accesses, DRAM
    unit_of = {t.name: mapping.unit(t.cls) for t in tasks}
    consumers: dict[str, list[_Task]] = {}
    for t in tasks:
        for ref in t.einsum.inputs:
            consumers.setdefault(ref.name, []).append(t)
    ops_j = 0.0
    buf_bytes = dram
    for t in tasks:
        e = t.einsum
        if e.is_contraction:
            ops_j += e.points * arch.energy_of("mac")
        else:
            ops_j += sum(n * arch.energy_of(op) for op, n in e.op_counts.items())
        sp, sz = spatial[t.name]
        reps = n_blocks if t.epilogue else n_blocks * n_tiles
        for ref in e.inputs:
            prod_name = next((d for d in (*t.deps, *t.prev_deps)
                              if d.split("@")[0] == (producer[ref.name].name
                                                     if ref.name in producer else "")), None)
            local = (prod_name is not None and unit_of[prod_name] == unit_of[t.name] and
                     ref.name not in xp)
            if local:
                continue
            n_el = math.prod(sz.get(r, 1) for r in ref.ranks)
            refold = math.prod(math.ceil(sz[r] / (arch.lanes if unit_of[t.name] == "1d" else
                                                  (arch.rows if i == 0 else arch.cols)))
                               for i, r in enumerate(sp) if r in sz and r not in ref.ranks)
            stationary = not any(r in fam for r in ref.ranks)
            times = n_blocks if (stationary or t.epilogue) else reps
            buf_bytes += n_el * refold * word * times
        outs = consumers.get(e.output.name, [])
        if (not outs or any(unit_of[c.name] != unit_of[t.name] for c in outs) or
                e.output.name in xp):
            n_el = math.prod(sz.get(r, 1) for r in e.output.ranks)
            buf_bytes += n_el * word * reps
    energy = {"compute": ops_j, "sram": buf_bytes * arch.sram_j_per_byte,
              "dram": dram * arch.dram_j_per_byte}
    util = useful2d / (arch.rows * arch.cols * cycles) if cycles else 0.0
    return CascadeCost(mapping, latency, cycles, compute, dram, energy, util,
                       {u: b / cycles if cycles else 0.0 for u, b in busy.items()}, spilled,
                       tensor_dram)


def mapping_space(casc: Cascade, arch: CascadeArch) -> list[CascadeMapping]:
    """Every mapping the mapper considers for ``casc`` on ``arch``."""
    n_q = casc.size[QUERY]
    blocks = sorted({min(n_q, arch.cols * 2 ** k) for k in range(40)
                     if arch.cols * 2 ** (k - 1) < n_q} | {n_q})
    policies = ("hold", "recompute") if cross_pass(casc) else ("hold",)
    fam, it = _family(casc)
    present = [c for c in CLASSES if any(einsum_class(e, fam, it) == c for e in casc.einsums)]
    out = []
    for units in itertools.product(UNITS, repeat=len(present)):
        for depth in (1, 2, 3):
            for block in blocks:
                for pol in policies:
                    out.append(CascadeMapping(tuple(zip(present, units, strict=True)), depth,
                                              block, pol))
    return out


def _bound(casc: Cascade, arch: CascadeArch, m: CascadeMapping) -> float:
    """A lower bound on a mapping's cycles (each array's total work), for pruning."""
    fam, it = _family(casc)
    size = casc.size
    n_blocks = math.prod(size.get(r, 1) for r in OUTER) * math.ceil(size[QUERY] /
                                                                     min(m.block, size[QUERY]))
    n_tiles = math.prod(size[r] for r in it) if it else 1
    load = {u: 0.0 for u in UNITS}
    for t in _tasks_cached(casc, m.policy):
        unit = m.unit(t.cls)
        cyc, _ = spatial_cycles(t.einsum, _iter_sizes(t.einsum, m.block, it, 0), unit, arch)
        load[unit] += cyc * (n_blocks if t.epilogue else n_blocks * n_tiles)
    return max(load.values())


@lru_cache(maxsize=256)
def _tasks_cached(casc: Cascade, policy: str) -> list[_Task]:
    return _tasks(casc, policy)


@lru_cache(maxsize=512)
def map_cascade(casc: Cascade, arch: CascadeArch, objective: str = "latency",
                tolerance: float = 0.01) -> CascadeCost:
    """The best mapping of ``casc`` on ``arch``. ``latency``: the least energy (leakage over
    the latency included) among mappings within ``tolerance`` of the least cycles, as
    :func:`mappings.mapper.search` does; ``energy``: the reverse."""
    costs: list[CascadeCost] = []
    space = mapping_space(casc, arch)
    bounds = {m: _bound(casc, arch, m) for m in space}
    space.sort(key=lambda m: bounds[m])
    best_cycles = math.inf
    for m in space:
        if objective == "latency" and bounds[m] > best_cycles * (1 + tolerance):
            break
        c = evaluate(casc, arch, m)
        if c is None:
            continue
        costs.append(c)
        best_cycles = min(best_cycles, c.cycles)
    if not costs:
        raise ValueError(f"cascade {casc.name}: no mapping fits {arch.name}'s "
                         f"{arch.buffer:.0f} B buffer")

    def joules(c: CascadeCost) -> float:
        return c.energy_total + arch.static_power * c.latency

    if objective == "latency":
        pool = [c for c in costs if c.cycles <= best_cycles * (1 + tolerance)]
        best = min(pool, key=lambda c: (joules(c), c.cycles))
    else:
        floor = min(joules(c) for c in costs) * (1 + tolerance)
        best = min((c for c in costs if joules(c) <= floor), key=lambda c: (c.cycles, joules(c)))
    best.evaluated = len(costs)
    return best
