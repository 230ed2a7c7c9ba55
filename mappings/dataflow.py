"""Spatial placement of an op graph on a dataflow chip: a fused pipeline over PCUs and PMUs.

A fused kernel (a decoder layer, or the run of its ops between two collectives) is laid out as a
pipeline: every op is a **stage** that owns some PCUs and PMUs; tiles of the streamed operand flow
from stage to stage through PMUs over the on-chip network and never touch HBM. Only weights, the
KV cache and the kernel's boundary tensors come from (or go to) HBM.

* **Work of a stage** (:class:`Stage`): a contraction is ``units`` output tiles of ``stages x
  lanes`` (output-stationary systolic mode: a tile streams its reduction of ``K`` elements and
  fills/drains ``stages + lanes - 1`` cycles); an element-wise op is ``ceil(elements / lanes)``
  vectors, each passing ``stages`` pipelined operators per cycle plus the transcendental tail.
* **PCU allocation** (:func:`allocate`): minimise the slowest stage time
  ``max_i ceil(units_i / p_i) x unit_cycles_i`` subject to ``sum p_i <= pcus``. Stage times fall
  monotonically in ``p_i``, so giving each next PCU to the current bottleneck (a heap) is optimal
  for this min-max problem; it starts from one PCU per stage, so work ends up shared in
  proportion to it, up to the integer tile counts.
* **PMU allocation**: each stage first gets the PMUs its double-buffered tiles need (a
  ``stages x K_CHUNK`` input and a ``K_CHUNK x lanes`` weight tile per PCU), then the rest in
  proportion to its PCUs (a PMU feeds a PCU).
* **Per-PCU mapping**: each contraction's share of one PCU is mapped by the mapper
  (:func:`mappings.mapper.search`, output-stationary) on a PCU view (:func:`pcu_arch`): HBM
  (bandwidth accounted for at the pipeline level), the stage's PMUs per PCU, per-PE registers;
  its latency (compute with spatial utilisation, PMU port stalls) is the stage time when longer
  than the fold model's. A PCU's share (:func:`pcu_share`) is whole tiles: columns first, then
  reduction chunks of ``K_CHUNK`` (partial sums of a split reduction are added in the PMUs; that
  addition is not timed), then rows. The allocation is redone with each stage's fold time scaled
  by its mapped/fold ratio while that shortens the pipeline (:func:`place`).
* **Pipeline time** (:func:`pipeline_time`): ``max(slowest stage, HBM bytes / sustained HBM
  bandwidth, streamed bytes / NoC bandwidth) + fill``, the fill being one tile through every
  stage (``sum_i t_i / tiles_i``).

Units: cycles of the dataflow clock, bytes, seconds.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

from arch import Arch
from mappings.mapper import search
from mappings.mapping import MappingError, gemm_problem
from mappings.spec import Level, SpatialArch

TRANSCENDENTAL = frozenset({"exp", "log", "div", "rsqrt", "sqrt", "recip", "gelu", "silu",
                            "sigmoid", "tanh"})
FREE_OPS = frozenset({"copy", "select"})
K_CHUNK = 512  # reduction elements of a streamed operand tile held per PMU buffer
MAPPER_BUDGET = 400  # mapper evaluations per PCU share (seeded sampling beyond it)


@dataclass(frozen=True)
class Stage:
    """One op of a fused kernel as a pipeline stage.

    ``kind``: ``gemm`` (``batch`` x (m, n, k) contraction on the systolic mode), ``simd``
    (``elements`` outputs, ``regular`` operator applications and ``tail`` transcendental ones on
    the SIMD mode), ``link`` (a collective inside the kernel: ``fixed_s`` seconds, no PCUs).
    ``hbm_bytes``: bytes it must move to/from HBM (weights, KV cache, kernel boundary tensors);
    ``stream_bytes``: bytes it hands to / takes from neighbouring stages on chip;
    ``weight_tile_bytes``: bytes of one streamed weight tile per PCU (double-buffered in PMUs);
    ``flops``: FLOPs of the stage (the closed-form bound); ``mappable``: the contraction is a
    plain GEMM the mapper maps on one PCU."""

    name: str
    kind: str
    flops: float
    hbm_bytes: float = 0.0
    stream_bytes: float = 0.0
    batch: int = 1
    m: int = 1
    n: int = 1
    k: int = 1
    elements: float = 0.0
    regular: float = 0.0
    tail: float = 0.0
    fixed_s: float = 0.0
    elem_bytes: float = 2.0
    mappable: bool = False


@dataclass
class StagePlacement:
    """Where one stage landed and how long it takes (seconds for all its work)."""

    name: str
    pcus: int
    pmus: int
    tiles: int
    seconds: float
    fold_seconds: float
    mapped_seconds: float = 0.0
    pmu_bytes: float = 0.0
    utilization: float = 0.0


@dataclass
class Placement:
    """A fused kernel's placement and time. Seconds; bytes."""

    stages: list[StagePlacement]
    seconds: float
    bottleneck: str
    t_stage: float
    t_hbm: float
    t_noc: float
    t_fill: float
    hbm_bytes: float
    stream_bytes: float
    pmu_bytes: float
    detail: dict = field(default_factory=dict)


def units_and_cycles(stage: Stage, arch: Arch) -> tuple[int, float]:
    """(independent tiles, cycles per tile on one PCU) of a stage (module doc)."""
    d = arch.dataflow
    if stage.kind == "gemm":
        kc = min(stage.k, K_CHUNK)
        tiles = stage.batch * math.ceil(stage.m / d.stages) * math.ceil(stage.n / d.lanes) * \
            math.ceil(stage.k / kc)
        return max(tiles, 1), float(kc + d.stages + d.lanes - 1)
    if stage.kind == "simd":
        vectors = max(math.ceil(stage.elements / d.lanes), 1)
        per_elem_regular = stage.regular / max(stage.elements, 1.0)
        per_elem_tail = stage.tail / max(stage.elements, 1.0)
        cyc = max(math.ceil(per_elem_regular / d.stages), 1) + \
            math.ceil(per_elem_tail / d.tail_ops_per_cycle)
        return vectors, float(cyc)
    return 0, 0.0


def stage_seconds(stage: Stage, arch: Arch, pcus: int) -> float:
    """Fold-model seconds of ``stage`` on ``pcus`` PCUs (at least its FLOPs at their peak)."""
    if stage.kind == "link":
        return stage.fixed_s
    return _seconds_on(_fold_terms(stage, arch), pcus)


def _fold_terms(stage: Stage, arch: Arch) -> tuple[int, float, float, float, float]:
    """What :func:`stage_seconds` of a compute stage reads, whatever its PCUs: (tiles, cycles
    per tile, clock Hz, FLOPs, FLOP/s of one PCU)."""
    d = arch.dataflow
    tiles, cyc = units_and_cycles(stage, arch)
    per_pcu = (2.0 * d.macs_per_cycle if stage.kind == "gemm" else d.lanes * d.stages) * d.clock
    return tiles, cyc, d.clock, stage.flops, per_pcu


def _seconds_on(terms: tuple[int, float, float, float, float], pcus: int) -> float:
    """:func:`stage_seconds` on ``pcus`` PCUs from the stage's :func:`_fold_terms`: whole waves
    of tiles, at least its FLOPs at the PCUs' peak."""
    tiles, cyc, clock, flops, per_pcu = terms
    return max(math.ceil(tiles / pcus) * cyc / clock, flops / (pcus * per_pcu))


def allocate(stages: list[Stage], arch: Arch, pcus: int | None = None,
             scale: list[float] | None = None,
             terms: dict[int, tuple] | None = None,
             seconds: dict[int, dict[int, float]] | None = None,
             attempt: int = 0) -> list[int]:
    """PCUs per stage minimising the slowest stage (greedy to the bottleneck; module doc);
    ``scale`` multiplies each stage's fold-model time (the mapper's correction).

    Each PCU goes to the stage whose scaled time is the longest (the lowest index at a tie),
    until the PCUs run out or that stage has a PCU per tile. A stage keeps taking PCUs without
    a heap operation while it stays ahead of the heap's top (the same order of grants: a
    socket's 1,040 PCUs over a decoder layer's stages cost ~1 ms instead of ~9 ms of CPU,
    its stage times from per-stage terms formed once, :func:`_fold_terms`; ``terms``: those
    of the compute stages, formed by the caller). An allocation made for a like pipeline
    (as many stages, as many PCUs, scaled or not: :data:`RECENT_KEPT` of them) is returned
    instead where :func:`is_greedy` finds it the greedy's: a decode step's layer mostly gets
    the last step's PCUs, checked in two stage times per stage (``seconds``: per compute
    stage, its fold times by PCU count where they are kept, read and filled there;
    ``attempt``: which of :func:`place`'s allocations of a pipeline this is, whose like
    pipelines' allocations are tried first)."""
    scaled = scale is not None
    scale = scale or [1.0] * len(stages)
    total = arch.dataflow.pcus if pcus is None else pcus
    compute = [i for i, s in enumerate(stages) if s.kind != "link"]
    alloc = [0] * len(stages)
    if not compute:
        return alloc
    if len(compute) > total:
        raise MappingError(f"{len(compute)} pipeline stages need at least as many PCUs, the chip "
                           f"has {total}")
    terms = terms if terms is not None else {i: _fold_terms(stages[i], arch) for i in compute}
    recent = _RECENT.setdefault((len(stages), total, scaled, attempt), [])
    links = [i for i, s in enumerate(stages) if s.kind == "link"]
    for cand in recent:   # an allocation of a like pipeline: kept where it is the greedy's
        if all(cand[i] == 0 for i in links) and \
                is_greedy(cand, terms, scale, total - len(compute), seconds):
            return list(cand)
    for i in compute:
        alloc[i] = 1
    left = total - len(compute)
    left -= _grant_below_level(terms, scale, alloc, left)
    heap = [(-_seconds_on(terms[i], alloc[i]) * scale[i], i, terms[i][0]) for i in compute]
    heapq.heapify(heap)
    while left > 0 and heap:
        neg_t, i, tiles = heapq.heappop(heap)
        if alloc[i] >= tiles:      # no more parallelism in this stage: it stays the bottleneck
            heapq.heappush(heap, (neg_t, i, tiles))
            break
        own, sc = terms[i], scale[i]
        top = heap[0][:2] if heap else None
        while True:   # stage i takes PCUs while its key stays below the heap's top
            alloc[i] += 1
            left -= 1
            neg_t = -_seconds_on(own, alloc[i]) * sc
            if left == 0 or alloc[i] >= tiles or (top is not None and (neg_t, i) > top):
                break
        heapq.heappush(heap, (neg_t, i, tiles))
    recent.insert(0, alloc)
    del recent[RECENT_KEPT:]
    return list(alloc)


#: allocations kept per (stages, PCUs, scaled or not, attempt) as candidates for the next like
#: pipeline: a decode step's layer differs from the last step's in its attention's KV length,
#: and mostly gets the same PCUs (each placement tries up to three allocations)
RECENT_KEPT = 4
_RECENT: dict[tuple, list[list[int]]] = {}


def is_greedy(alloc: list[int], terms: dict[int, tuple], scale: list[float],
              left: int, seconds: dict[int, dict[int, float]] | None = None) -> bool:
    """Whether ``alloc`` is the allocation :func:`allocate`'s greedy makes of ``left`` PCUs
    past one per compute stage (``terms``: theirs). The greedy takes the pairs (stage ``i``,
    its count ``p``) in the order of ``(-scaled time at p, i, p)`` (each stage's keys never
    fall as it takes PCUs) and grants one PCU per pair until none is left or it takes a pair
    with ``p`` at the stage's tiles. So ``alloc`` is its result exactly when every stage
    holds at most a PCU per tile, each stage's last granted pair comes before every stage's
    next pair, and either every PCU is granted or the first next pair is one at its stage's
    tiles. ``seconds``: per stage, its fold times (:func:`_seconds_on`) by PCU count, read
    and filled (a decode step's stages are mostly the last step's, on the same PCUs)."""
    # the pairs' keys compared as the tuples (-scaled time, i, p) compare, written out: a stage
    # has one next pair (at p) and one last granted pair (at p - 1), so equal times fall to
    # the stage index and, within a stage, the last comes first
    granted, stop = 0, False
    nxt_t = last_t = 0.0
    nxt_i = last_i = -1
    for i, t in terms.items():
        p, tiles = alloc[i], t[0]
        if p < 1 or p > tiles:
            return False
        sc = scale[i]
        granted += p - 1
        sec = seconds[i] if seconds is not None else {}
        at_p = sec.get(p)
        if at_p is None:
            at_p = sec[p] = _seconds_on(t, p)
        kt = -at_p * sc
        if nxt_i < 0 or kt < nxt_t or (kt == nxt_t and i < nxt_i):
            nxt_t, nxt_i, stop = kt, i, p >= tiles
        if p > 1:
            at_q = sec.get(p - 1)
            if at_q is None:
                at_q = sec[p - 1] = _seconds_on(t, p - 1)
            dt = -at_q * sc
            if last_i < 0 or dt > last_t or (dt == last_t and i > last_i):
                last_t, last_i = dt, i
    if granted > left:
        return False
    if last_i >= 0 and nxt_i >= 0 and not (last_t < nxt_t or (last_t == nxt_t
                                                              and last_i <= nxt_i)):
        return False
    return granted == left or stop


def _grant_below_level(terms: dict[int, tuple], scale: list[float], alloc: list[int],
                       left: int) -> int:
    """The grants :func:`allocate`'s greedy makes first, made at once; how many.

    The greedy grants in the order of the keys ``(-scaled time at p PCUs, stage)``, which never
    fall as a stage takes PCUs, so it first grants every key below any level it reaches: at
    a time level ``T``, each stage its PCUs while its scaled time is above ``T``
    (:func:`_above`: a binary search over its PCU counts, the greedy's own floats). The level
    is set where the stages' work spread evenly would end (their scaled times as ``work /
    PCUs``) and raised until no stage runs out of tiles above it (the greedy stops there)
    and those grants fit in ``left`` PCUs (a stage's whole waves only lengthen it): from 5%
    above, 25% more at each try, at most four (these choose how much the greedy is left to
    do, not what it gives); else nothing is granted here and the greedy makes every grant."""
    if left < 64:
        return 0
    work = sum(scale[i] * _seconds_on(t, 1) for i, t in terms.items())
    level = work / (left + len(terms)) * 1.05 / 1.25
    for _ in range(4):
        level *= 1.25
        if any(-_seconds_on(t, t[0]) * scale[i] < -level for i, t in terms.items()):
            continue   # a stage reaches a PCU per tile above the level
        counts = {i: _above(t, scale[i], level) for i, t in terms.items()}
        granted = sum(counts.values())
        if granted <= left:
            for i, c in counts.items():
                alloc[i] += c
            return granted
    return 0


def _above(terms: tuple, scale: float, level: float) -> int:
    """How many PCU counts ``p`` (from 1 up) the greedy finds a stage's key
    ``-_seconds_on(terms, p) * scale`` below ``-level`` at: a prefix, the key never falling
    (the stage has no key below at ``p = tiles``: the caller checks). A binary search, first
    within a few counts of where the stage's time ``~ work / p`` meets the level (the same
    count wherever it starts: the boundary of a prefix is one), else over all counts."""
    tiles, cyc, clock, flops, per_pcu = terms

    def below(p: int) -> bool:   # -_seconds_on(terms, p) * scale < -level
        return -max(math.ceil(tiles / p) * cyc / clock, flops / (p * per_pcu)) * scale < -level

    guess = int(max(tiles * cyc / clock, flops / per_pcu) * scale / level)
    lo, hi = max(0, min(guess, tiles) - 2), min(tiles, max(guess, 0) + 3)
    if not ((lo == 0 or below(lo)) and (hi == tiles or not below(hi))):
        lo, hi = 0, tiles   # the key at p = lo (0: none) is below; at p = hi it is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if below(mid):
            lo = mid
        else:
            hi = mid
    return lo


def allocate_pmus(stages: list[Stage], arch: Arch, pcus: list[int],
                  memos: dict[int, dict] | None = None) -> list[int]:
    """PMUs per stage: what its double-buffered tiles need, then the rest by PCU share
    (``memos``: the stages' :func:`_memo_of` by index, where each stage's need on its PCUs is
    kept)."""
    d = arch.dataflow
    need = []
    for i, (s, p) in enumerate(zip(stages, pcus, strict=True)):
        if s.kind == "link" or p == 0:
            need.append(0)
            continue
        by_pcus = None
        if memos is not None and (memo := memos.get(i)) is not None:
            by_pcus = memo.get("pmus")
            if by_pcus is None:
                by_pcus = memo["pmus"] = {}
        got = by_pcus.get(p) if by_pcus is not None else None
        if got is None:
            got = max(1, math.ceil(2 * _tile_in(s, arch) * p / d.pmu_capacity))
            if by_pcus is not None:
                by_pcus[p] = got
        need.append(got)
    base = sum(need)
    pmus = d.pmus
    if base > pmus:
        raise MappingError(f"the pipeline's tile buffers need {base} PMUs, the chip has {pmus}")
    spare = pmus - base
    total_p = sum(pcus) or 1
    return [n + (math.floor(spare * p / total_p) if n else 0) for n, p in zip(need, pcus,
                                                                               strict=True)]


def _tile_in(s: Stage, arch: Arch) -> float:
    """Bytes of one PCU's streamed input tile of stage ``s`` (:func:`allocate_pmus`)."""
    d = arch.dataflow
    kc = min(s.k, K_CHUNK)
    return (min(s.m, d.stages) * kc + kc * d.lanes) * s.elem_bytes if s.kind == "gemm" \
        else d.lanes * s.elem_bytes * 2


def _pmus_of(stages: list[Stage], arch: Arch, pcus: list[int],
             memos: dict[int, dict]) -> list[int]:
    """:func:`allocate_pmus` of a pipeline whose compute stages' memos are ``memos``, kept
    per (stages' tile bytes, PCUs, the chip's PMUs and their capacity) (:data:`_PMUS`): a
    decode step's layer mostly repeats the last step's tiles on the same PCUs."""
    tiles = tuple(memos[i].get("tile_in") or memos[i].setdefault("tile_in", _tile_in(s, arch))
                  if i in memos else None for i, s in enumerate(stages))
    d = arch.dataflow
    key = (tiles, tuple(pcus), d.pmus, d.pmu_capacity)
    got = _PMUS.get(key)
    if got is None:
        got = allocate_pmus(stages, arch, pcus, memos)
        if len(_PMUS) >= PMUS_MEMO_SIZE:
            _PMUS.clear()
        _PMUS[key] = got
    return list(got)


#: :func:`_pmus_of` by its key (cleared when full: a bound on memory)
PMUS_MEMO_SIZE = 4096
_PMUS: dict[tuple, list[int]] = {}


def pcu_share(stage: Stage, arch: Arch, pcus: int) -> tuple[int, int, int]:
    """(m, n, k) of one PCU's share of a GEMM stage on ``pcus`` PCUs: columns split first (in
    whole ``lanes``-wide tiles), then ``K_CHUNK`` reduction chunks, then rows (whole
    ``stages``-high tiles); shares are padded to whole tiles, as the hardware pads them."""
    d = arch.dataflow
    kc = min(stage.k, K_CHUNK)
    n_tiles = math.ceil(stage.n / d.lanes)
    k_tiles = math.ceil(stage.k / kc)
    m_tiles = math.ceil(stage.m / d.stages)
    p_n = min(pcus, n_tiles)
    p_k = min(max(pcus // p_n, 1), k_tiles)
    p_m = min(max(pcus // (p_n * p_k), 1), m_tiles)
    n = min(math.ceil(n_tiles / p_n) * d.lanes, stage.n) if p_n == 1 else \
        math.ceil(n_tiles / p_n) * d.lanes
    k = min(math.ceil(k_tiles / p_k) * kc, stage.k)
    m = stage.m if stage.m <= d.stages else math.ceil(m_tiles / p_m) * d.stages
    return m, n, k


def pcu_arch(arch: Arch, pmus_per_pcu: float) -> SpatialArch:
    """One PCU as the mapper sees it: HBM (unbounded here: the pipeline accounts for it), the
    PMUs a PCU owns (capacity, read port in B/cycle), per-PE accumulators; stages x lanes MACs."""
    d = arch.dataflow
    e = arch.energy
    hbm_j = e.memory.get("hbm", 0.0) * 8
    sram_j = e.memory.get("sram", 0.0) * 8
    per_flop = e.compute.get(d.dtype) or next(iter(e.compute.values()))
    elem = 2.0 if d.dtype in ("bf16", "fp16") else 4.0
    pmu_cap = d.pmu_capacity * pmus_per_pcu
    pmu_bw = d.pmu_read_bandwidth * pmus_per_pcu / d.clock
    levels = (Level("hbm", ("I", "W", "O"), math.inf, math.inf, hbm_j, hbm_j),
              Level("pmu", ("I", "W", "O"), pmu_cap, pmu_bw, sram_j, sram_j,
                    double_buffered=True),
              Level("pe", ("O",), 4.0, math.inf, sram_j / 16, sram_j / 16, per_pe=True))
    return SpatialArch(f"{arch.name}.pcu", levels, d.stages, d.lanes, 2 * per_flop, d.clock,
                       (("I", elem), ("W", elem), ("O", elem)), 4.0)


_MAPPED: dict[tuple, tuple[float, float, float]] = {}


def _mapped(m: int, n: int, k: int, pmus_per_pcu: float,
            arch: Arch) -> tuple[float, float, float]:
    """(cycles, PMU bytes, utilisation) of the mapper's best OS mapping of one PCU's GEMM
    (memoised per shape, PMU share and PCU description)."""
    key = (m, n, k, round(pmus_per_pcu, 6), _arch_key(arch))
    hit = _MAPPED.get(key)
    if hit is not None:
        return hit
    spatial = pcu_arch(arch, pmus_per_pcu)
    try:
        res = search(gemm_problem(m, n, k, "pcu_share"), spatial, budget=MAPPER_BUDGET, seed=0,
                     dataflow="os")
    except MappingError:
        out = (math.inf, 0.0, 0.0)
    else:
        acc = res.cost.accesses.get("pmu", {})
        elem = spatial.bytes_of("I")
        pmu_bytes = sum(_total(v) for v in acc.values()) * elem if acc else 0.0
        out = (res.cost.latency_cycles, pmu_bytes, res.cost.utilization)
    _MAPPED[key] = out
    return out


def _total(v) -> float:
    return float(sum(v.values())) if isinstance(v, dict) else float(v)


def _arch_key(arch: Arch) -> tuple:
    d = arch.dataflow
    return (arch.name, d.stages, d.lanes, d.clock, d.pmu_capacity, d.pmu_read_bandwidth)


def _stage_placement(s: Stage, arch: Arch, use_mapper: bool, p: int, q: int,
                     terms: tuple) -> StagePlacement:
    """Compute stage ``s`` on ``p`` PCUs and ``q`` PMUs (``terms``: its
    :func:`_fold_terms`): its fold time and, where the mapper maps it, its mapped time."""
    d = arch.dataflow
    fold = _seconds_on(terms, p)      # stage_seconds(s, arch, p), its terms formed once
    t = fold
    mapped = 0.0
    pmu_bytes = 2.0 * s.stream_bytes
    util = s.flops / (fold * p * 2.0 * d.macs_per_cycle * d.clock) if fold and \
        s.kind == "gemm" else 0.0
    if use_mapper and s.mappable and s.kind == "gemm":
        m_sh, n_sh, k_sh = pcu_share(s, arch, p)
        cyc, pmu_b, util_m = _mapped(m_sh, n_sh, k_sh, q / p, arch)
        if math.isfinite(cyc):
            mapped = s.batch * cyc / d.clock
            t = max(t, mapped)
            pmu_bytes = s.batch * pmu_b * p
            util = util_m if mapped >= fold else util
    return StagePlacement(s.name, p, q, terms[0], t, fold, mapped, pmu_bytes, util)


#: per stage (by identity) and arch: its fold terms ("terms"), its fold times by PCU count
#: ("seconds"), its placements and their seconds per tile by (PCUs, PMUs, mapped or not), its
#: PMU need by PCU count ("pmus") and its input tile's bytes ("tile_in") (each entry keeps
#: its stage and arch alive, so their ids are not reused while it is cached; cleared when
#: :data:`STAGE_MEMO_SIZE` stages are held)
_BY_STAGE: dict[tuple[int, int], tuple[Stage, Arch, dict]] = {}
STAGE_MEMO_SIZE = 4096


def _memo_of(stage: Stage, arch: Arch) -> dict:
    """The memo of ``stage`` on ``arch`` (:data:`_BY_STAGE`)."""
    hit = _BY_STAGE.get((id(stage), id(arch)))
    if hit is not None and hit[0] is stage and hit[1] is arch:
        return hit[2]
    if len(_BY_STAGE) >= STAGE_MEMO_SIZE:
        _BY_STAGE.clear()
    memo: dict = {}
    _BY_STAGE[id(stage), id(arch)] = (stage, arch, memo)
    return memo


def _per_tile(sp: StagePlacement) -> float:
    """Seconds of one tile of a placed stage through it (its time over its waves)."""
    return sp.seconds / max(math.ceil(sp.tiles / max(sp.pcus, 1)), 1)


def place(stages: list[Stage], arch: Arch, use_mapper: bool = True,
          refine: int = 2) -> Placement:
    """Place ``stages`` as one fused pipeline on ``arch`` and time it (module doc). The PCU
    allocation is repeated ``refine`` times with each stage's fold time scaled by its mapped /
    fold ratio of the previous placement; the fastest placement is kept. Each compute stage's
    fold terms (:func:`_fold_terms`) and its placement on given PCUs and PMUs are worked out
    once per stage object (:func:`_memo_of`: for every placement tried, and for the next
    pipeline that holds the stage)."""
    terms, memos, seconds = {}, {}, {}
    for i, s in enumerate(stages):
        if s.kind != "link":
            memo = memos[i] = _memo_of(s, arch)
            got = memo.get("terms")
            if got is None:
                got = memo["terms"] = _fold_terms(s, arch)
            terms[i] = got
            seconds[i] = memo.setdefault("seconds", {})
    hbm_bytes = sum(s.hbm_bytes for s in stages)
    stream = sum(s.stream_bytes for s in stages)
    hbm = arch.memory["hbm"]
    fixed = (hbm_bytes, stream,
             hbm_bytes / (hbm.bandwidth * hbm.efficiency) if hbm_bytes else 0.0,
             stream / arch.dataflow.noc_bandwidth)
    best = _place(stages, arch, use_mapper, None, terms, memos, fixed, seconds)
    for attempt in range(1, 1 + (refine if use_mapper else 0)):
        scale = [max(sp.seconds / sp.fold_seconds, 1.0) if sp.fold_seconds > 0 else 1.0
                 for sp in best.stages]
        if all(x == 1.0 for x in scale):
            break
        cand = _place(stages, arch, use_mapper, scale, terms, memos, fixed, seconds, attempt)
        if cand.seconds < best.seconds * (1 - 1e-9):
            best = cand
        else:
            break
    return best


def _place(stages: list[Stage], arch: Arch, use_mapper: bool,
           scale: list[float] | None, terms: dict[int, tuple],
           memos: dict[int, dict], fixed: tuple[float, float, float, float],
           seconds: dict[int, dict[int, float]] | None = None, attempt: int = 0) -> Placement:
    """One placement of ``stages`` (PCUs allocated with each stage's fold time scaled by
    ``scale``; ``terms``: the compute stages' :func:`_fold_terms`; ``memos``: their
    :func:`_memo_of`; ``fixed``: the pipeline's HBM and stream bytes and their times, s,
    which no placement changes; ``seconds``: their fold times by PCU count, kept;
    ``attempt``: :func:`allocate`'s)."""
    pcus = allocate(stages, arch, scale=scale, terms=terms, seconds=seconds, attempt=attempt)
    pmus = _pmus_of(stages, arch, pcus, memos)
    placed: list[StagePlacement] = []
    # the first tile crosses every stage; when a stage is the bottleneck its own first tile is
    # inside its time already
    per_tile: list[float] = []
    pmu_total = 0.0
    t_stage, b = 0.0, -1          # the slowest stage's time and index (the first at a tie)
    for i, (s, p, q) in enumerate(zip(stages, pcus, pmus, strict=True)):
        if s.kind == "link":
            sp = StagePlacement(s.name, 0, 0, 1, s.fixed_s, s.fixed_s)
            tile_s = _per_tile(sp)
        else:
            memo = memos[i]
            hit = memo.get((p, q, use_mapper))
            if hit is None:   # (a decode step's layer repeats all its stages but its attention)
                sp = _stage_placement(s, arch, use_mapper, p, q, terms[i])
                hit = memo[p, q, use_mapper] = (sp, _per_tile(sp))
            sp, tile_s = hit
            pmu_total += sp.pmu_bytes
        placed.append(sp)
        per_tile.append(tile_s)
        if b < 0 or sp.seconds > t_stage:
            t_stage, b = sp.seconds, i
    hbm_bytes, stream, t_hbm, t_noc = fixed
    body = max(t_stage, t_hbm, t_noc)
    fill = sum(per_tile)
    if placed and body == t_stage:
        fill -= per_tile[b]
    bottleneck = ("stage:" + placed[b].name
                  if body == t_stage and placed else ("hbm" if body == t_hbm else "noc"))
    return Placement(placed, body + fill, bottleneck, t_stage, t_hbm, t_noc, fill, hbm_bytes,
                     stream, pmu_total)
