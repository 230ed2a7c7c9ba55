"""The mapper: search spatial unrolling, per-level factors and loop orders within a budget.

Search space, per spatial unrolling (each array dimension takes the largest divisor of one rank
that fits): every rank's remaining extent is split over the temporal levels (all divisor chains),
splits whose tiles overflow a level are pruned before any loop order is considered, and every
surviving split is tried with every loop order of each level (permutations of its non-unit loops).
When the space is within ``budget`` evaluations it is searched exhaustively; otherwise ``budget``
points are drawn at random with ``seed`` (numpy ``default_rng``), so the same inputs always give
the same mapping. Results are memoised per (problem, arch, budget, seed, objective, convention).
The nests are scored together by :func:`mappings.cost.evaluate_batch` (vectorised, bit-identical
to :func:`mappings.cost.evaluate` on each; ``fast=False`` takes that per-nest reference path).

Per-operand level boundaries (``per_operand``, on by default): the ``REFINE`` best nests by latency
and by energy are also tried with each operand's loops allocated to its own levels bottom-up
(:func:`greedy_cuts`, ZigZag's LOMA allocation), so that, e.g., partial sums stay in a PE register
across loops for which the weights are refilled. ``evaluated`` counts both kinds.

Objectives: ``latency`` (then energy), ``energy`` (then latency), ``edp``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mappings.cost import MappingCost, batch_counts, batch_latency, evaluate, score_kept, unsized
from mappings.mapping import Mapping, MappingError, Problem, holds, validate
from mappings.spec import SpatialArch

REFINE = 64   # nests per objective given per-operand boundaries (see _search)


@dataclass(frozen=True)
class MapperResult:
    """The best mapping found, its cost, and how much of the space was looked at."""

    mapping: Mapping
    cost: MappingCost
    evaluated: int
    space: int
    exhaustive: bool


@lru_cache(maxsize=16384)
def _divisor_chains(n: int, parts: int, allowed: tuple[bool, ...]) -> tuple[tuple[int, ...], ...]:
    """All ways to write ``n`` as an ordered product of ``parts`` factors (1 where not allowed),
    first factors ascending (memoised: a decode run asks again for each KV length's ranks)."""
    if parts == 0:
        return ((),) if n == 1 else ()
    divs = _divisors(n) if allowed[0] else (1,)
    return tuple((d,) + rest for d in divs
                 for rest in _divisor_chains(n // d, parts - 1, allowed[1:]))


@lru_cache(maxsize=16384)
def _divisors(n: int) -> tuple[int, ...]:
    """The divisors of ``n`` (> 0), ascending: those up to its square root and their pairs."""
    low = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return tuple(low + [n // d for d in reversed(low) if d * d != n])


def _largest_divisor_at_most(n: int, cap: int) -> int:
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1


def _orders(ranks_at_level: tuple[str, ...], canonical: bool) -> list[tuple[str, ...]]:
    """Loop orders to try at one level. With ``canonical`` only the innermost loop varies
    (exact when every rank is irrelevant to at most one operand, as in a GEMM: refills depend
    only on which loops trail the innermost relevant one)."""
    if len(ranks_at_level) <= 1:
        return [ranks_at_level]
    if not canonical:
        return list(itertools.permutations(ranks_at_level))
    return [tuple(r for r in ranks_at_level if r != last) + (last,) for last in ranks_at_level]


def spatial_candidates(problem: Problem, arch: SpatialArch,
                       dataflow: str | None = None) -> list[tuple[tuple, tuple]]:
    """Spatial unrollings: a rank on the rows and another on the columns. ``dataflow`` fixes
    them for a GEMM (``ws``: reduction on rows, N on columns; ``os``: M, N; ``is``: K, M)."""
    size = problem.size
    fixed = {"ws": ("k", "n"), "os": ("m", "n"), "is": ("k", "m")}
    if dataflow in fixed and set(size) >= set(fixed[dataflow]):
        pairs = [fixed[dataflow]]
    else:
        pairs = [(a, b) for a in size for b in size if a != b]
    out = []
    for a, b in pairs:
        fa = _largest_divisor_at_most(size[a], arch.rows)
        fb = _largest_divisor_at_most(size[b], arch.cols)
        out.append((((a, fa),), ((b, fb),)))
    return out


def _feasible(problem: Problem, arch: SpatialArch, chains: dict[str, list[tuple[int, ...]]],
              sp: dict[str, int], bypass: frozenset,
              relax_pe: bool = False) -> list[tuple[tuple[int, ...], ...]]:
    """Splits (one divisor chain per rank) whose tiles fit every level, vectorised over the
    grid of all chain combinations (same rule as :func:`mappings.mapping.validate`). With
    ``relax_pe`` per-PE levels are not checked: per-operand cuts decide what each one holds."""
    ranks = problem.ranks
    return [tuple(chains[r][i] for r, i in zip(ranks, idx, strict=True))
            for idx in _feasible_index(problem, arch, chains, sp, bypass, relax_pe)]


def _feasible_index(problem: Problem, arch: SpatialArch,
                    chains: dict[str, list[tuple[int, ...]]], sp: dict[str, int],
                    bypass: frozenset, relax_pe: bool = False) -> np.ndarray:
    """:func:`_feasible`'s splits as rows of chain indices, one column per rank (int64, in the
    same order)."""
    ranks = problem.ranks
    nlev = len(arch.levels)
    fan = arch.fanout_index
    inner = {}
    for r in ranks:
        f = np.array(chains[r], dtype=np.float64).reshape(len(chains[r]), nlev)
        inner[r] = np.flip(np.cumprod(np.flip(f, axis=1), axis=1), axis=1)
    shape = tuple(len(chains[r]) for r in ranks)
    ok = np.ones(shape, dtype=bool)
    probe = Mapping(tuple(() for _ in arch.levels), bypass=bypass)
    for j, lev in enumerate(arch.levels):
        if math.isinf(lev.capacity) or (relax_pe and j >= fan):
            continue
        used = np.zeros(shape)
        for op in ("I", "W", "O"):
            if not holds(arch, probe, j, op):
                continue
            rel = problem.ranks_of(op)
            tile = np.ones(shape)
            for axis, r in enumerate(ranks):
                if r in rel:
                    view = [1] * len(ranks)
                    view[axis] = shape[axis]
                    tile = tile * inner[r][:, j].reshape(view)
            if j < fan:
                tile = tile * math.prod(sp.get(r, 1) for r in rel)
            word = arch.psum_bytes if (op == "O" and lev.per_pe) else arch.bytes_of(op)
            need = tile * word
            own = lev.capacity_for(op)
            if own is not None:
                ok &= need <= own + 1e-9
            used = used + need
        ok &= used <= lev.capacity + 1e-9
    return np.argwhere(ok)


def _build(problem: Problem, arch: SpatialArch, split: dict[str, tuple[int, ...]],
           orders: tuple[tuple[str, ...], ...], spatial, bypass) -> Mapping:
    temporal = []
    for lvl, order in enumerate(orders):
        temporal.append(tuple((r, split[r][lvl]) for r in order))
    return Mapping(tuple(temporal), spatial[0], spatial[1], bypass)


def greedy_cuts(problem: Problem, arch: SpatialArch, mapping: Mapping) -> Mapping | None:
    """``mapping`` with per-operand level starts chosen bottom-up as ZigZag's LOMA allocates
    memory: each operand's innermost level takes as many innermost loops as fit, then the next
    level up, and so on. Operands sharing a level's capacity are allocated O, W, I in turn.
    None when some operand's innermost tile cannot fit. What does not depend on the levels'
    capacities (each operand's tile sizes per loop start, bytes per element) is worked out
    once per mapping and arch up to its capacities (:func:`_cut_terms`)."""
    n, per_operand = _cut_terms(problem, arch, mapping)
    levels = arch.levels
    used = [0.0] * len(levels)
    cuts = {}
    for op, suffix, per_level in per_operand:
        starts = [0] * len(levels)
        upper = n
        for i, held, mult in per_level:
            if not held:
                starts[i] = upper
                continue
            lev = levels[i]
            own = lev.capacity_for(op)
            room = own if own is not None else lev.capacity - used[i]
            if suffix[upper] * mult > room + 1e-9:
                return None
            s = upper
            while s > 0 and suffix[s - 1] * mult <= room + 1e-9:
                s -= 1
            starts[i] = s
            if own is None and not math.isinf(lev.capacity):
                used[i] += suffix[s] * mult
            upper = s
        cuts[op] = tuple(starts)
    return Mapping(mapping.temporal, mapping.spatial_rows, mapping.spatial_cols, mapping.bypass,
                   mapping.fusion, tuple((op, cuts[op]) for op in ("I", "W", "O")))


def _cut_terms(problem: Problem, arch: SpatialArch, mapping: Mapping) -> tuple[int, list]:
    """What :func:`greedy_cuts` reads of ``mapping`` apart from the levels' capacities: its
    loops' count and, per operand (O, W, I), the elements of its tile from each loop start
    inwards and, per level from the innermost but one up, whether it holds the operand and
    its bytes per tile element there (shared levels hold the spatial copies). Kept per
    mapping (by identity: a kept sample's nests are searched again with other capacities) and
    arch up to its bandwidths and capacities (:data:`_CUT_TERMS`)."""
    shape = unsized(arch)
    key = (id(mapping), id(shape), problem)
    hit = _CUT_TERMS.get(key)
    if hit is not None and hit[0] is mapping and hit[1] is shape:
        return hit[2]
    nest = mapping.nest()
    n = len(nest)
    fan = arch.fanout_index
    spatial = (*mapping.spatial_rows, *mapping.spatial_cols)
    per_operand = []
    for op in ("O", "W", "I"):
        rel = frozenset(problem.ranks_of(op))
        sp_rel = math.prod(x for r, x in spatial if r in rel)
        suffix = [1] * (n + 1)
        for t in range(n - 1, -1, -1):
            r, x = nest[t]
            suffix[t] = suffix[t + 1] * (x if r in rel else 1)
        per_level = []
        for i in range(len(arch.levels) - 1, 0, -1):
            per_pe = i >= fan
            word = arch.psum_bytes if (op == "O" and per_pe) else arch.bytes_of(op)
            per_level.append((i, holds(arch, mapping, i, op), word * (1 if per_pe else sp_rel)))
        per_operand.append((op, suffix, per_level))
    out = (n, per_operand)
    if len(_CUT_TERMS) >= CUT_TERMS_MEMO_SIZE:
        _CUT_TERMS.clear()
    _CUT_TERMS[key] = (mapping, shape, out)   # keeps the mapping alive: its id stays its own
    return out


#: :func:`_cut_terms` by (mapping's id, :func:`mappings.cost.unsized` arch's id, problem)
#: (cleared when full: a bound on memory)
CUT_TERMS_MEMO_SIZE = 8192
_CUT_TERMS: dict[tuple, tuple] = {}


def search(problem: Problem, arch: SpatialArch, budget: int = 20000, seed: int = 0,
           objective: str = "latency", convention: str = "overlap",
           dataflow: str | None = None, bypass: frozenset[tuple[str, str]] = frozenset(),
           tolerance: float = 0.01, per_operand: bool = True, fast: bool = True) -> MapperResult:
    """Best mapping of ``problem`` on ``arch`` under ``objective`` (memoised, deterministic).
    ``tolerance``: relative band within which the secondary metric decides. ``per_operand``:
    also try each loop nest with per-operand level boundaries (:func:`greedy_cuts`). ``fast``:
    score the nests with :func:`mappings.cost.evaluate_batch` (the same figures, vectorised);
    false scores each with :func:`mappings.cost.evaluate` (the reference path)."""
    return _search(problem, arch, budget, seed, objective, convention, dataflow, bypass,
                   tolerance, per_operand, fast)


@lru_cache(maxsize=4096)
def _search(problem: Problem, arch: SpatialArch, budget: int, seed: int, objective: str,
            convention: str, dataflow: str | None, bypass: frozenset[tuple[str, str]],
            tolerance: float, per_operand: bool = False, fast: bool = True) -> MapperResult:
    irrelevant_to = {r: sum(r not in problem.ranks_of(op) for op in ("I", "W", "O"))
                     for r in problem.ranks}
    canonical = all(v <= 1 for v in irrelevant_to.values())
    space, points, runs, nests = _sample(problem, arch, dataflow, bypass, canonical, budget,
                                         seed)
    if not space:
        raise MappingError(f"no valid mapping of {problem.name} on {arch.name} (tiles never fit)")
    exhaustive = space <= budget
    if fast and problem.macs < 2 ** 50:
        lats, energies = _score_runs(problem, arch, runs, bypass, convention)
    else:
        lats, energies = [], []
        for spatial, split, orders in points:
            sc = evaluate(problem, arch, _build(problem, arch, split, orders, spatial, bypass),
                          convention, check=False, detail=False)
            lats.append(sc.latency_cycles)
            energies.append(sc.energy_total)

    def nest_at(i: int) -> tuple[Mapping, tuple]:
        """The ``i``-th point's mapping and its nest's key (kept with the sample)."""
        got = nests[i]
        if got is None:
            spatial, split, orders = points[i]
            m = _build(problem, arch, split, orders, spatial, bypass)
            got = nests[i] = (m, (m.spatial_rows, m.spatial_cols, _merged(m.nest())))
        return got

    costs: list = [None] * len(points)   # mappings, built only where needed
    if per_operand and costs:
        # per-operand boundaries (ZigZag's bottom-up allocation) on the most promising nests:
        # the REFINE best by latency and the REFINE best by energy, each nest once
        lat_a, en_a = np.asarray(lats), np.asarray(energies)
        by_lat = np.lexsort((en_a, lat_a))[:REFINE].tolist()      # stable, as sorted()
        by_energy = np.lexsort((lat_a, en_a))[:REFINE].tolist()
        seen: set = set()
        for i in dict.fromkeys(by_lat + by_energy):
            m, key = nest_at(i)
            if key in seen:
                continue
            seen.add(key)
            g = greedy_cuts(problem, arch, m)
            if g is not None:
                sc = score_kept(problem, arch, g, convention)
                costs.append(g)
                lats.append(sc.latency_cycles)
                energies.append(sc.energy_total)
    if not costs:
        raise MappingError(f"no valid mapping of {problem.name} on {arch.name} (tiles never fit)")
    # primary metric first, then the secondary within the tolerance band of the best primary
    order = range(len(costs))
    if objective == "latency":
        floor = min(lats) * (1 + tolerance)
        best = min((i for i in order if lats[i] <= floor), key=lambda i: (energies[i], lats[i]))
    elif objective == "energy":
        floor = min(energies) * (1 + tolerance)
        best = min((i for i in order if energies[i] <= floor),
                   key=lambda i: (lats[i], energies[i]))
    else:
        best = min(order, key=lambda i: (energies[i] * lats[i], lats[i]))
    mapping = costs[best] if costs[best] is not None else nest_at(best)[0]
    return MapperResult(mapping, evaluate(problem, arch, mapping, convention, check=False),
                        len(costs), space, exhaustive)


#: samples kept by :func:`_sample` (cleared when full), and which: those of at most
#: SAMPLE_MEMO_POINTS points drawn from at most SAMPLE_MEMO_ROWS feasible splits (their key
#: holds the splits). Bounds on memory, not fitted figures: an SN40L PCU share's search (400
#: points of 338 splits) leaves 1.4 MB traced with its mappings built, so the memo stays
#: under ~50 MB; a long sampled search (the default budget, 20,000 points) is not kept. An
#: SN40L decode asks for 8 GEMM shapes
SAMPLE_MEMO_SIZE = 32
SAMPLE_MEMO_POINTS = 1024
SAMPLE_MEMO_ROWS = 4096
_SAMPLES: dict[tuple, tuple[int, list, list, list]] = {}


def _sample(problem: Problem, arch: SpatialArch, dataflow: str | None, bypass: frozenset,
            canonical: bool, budget: int, seed: int) -> tuple[int, list, list, list]:
    """The search space's size, the points a search with ``budget`` and ``seed`` looks at
    (every point when the space is within the budget, else ``budget`` drawn with numpy's
    ``default_rng(seed)``; ``(spatial, split, orders)`` in enumeration order) and their scoring
    arrays (:func:`_score_arrays`), and a list in which the search keeps each point's mapping
    and nest key once built (``bypass`` is the mappings'). Each spatial unrolling's feasible
    splits are worked out here; the rest is kept per problem and feasible set
    (:data:`_SAMPLES`): a PCU's GEMM share mapped with other PMU shares often keeps the same
    splits and only its bandwidths move."""
    nlev = len(arch.levels)
    feasible = []
    for spatial in spatial_candidates(problem, arch, dataflow):
        sp = {r: x for r, x in (*spatial[0], *spatial[1])}
        chains = {r: _divisor_chains(problem.size[r] // sp.get(r, 1), nlev, (True,) * nlev)
                  for r in problem.ranks}
        rows = _feasible_index(problem, arch, chains, sp, bypass)
        feasible.append((spatial, len(rows), rows.astype(np.int64).tobytes()))
    key = (problem, nlev, canonical, budget, seed, bypass, tuple(feasible))
    hit = _SAMPLES.get(key)
    if hit is None:
        hit = _sampled(problem, nlev, canonical, budget, seed, key[-1])
        if budget <= SAMPLE_MEMO_POINTS and sum(n for _, n, _ in feasible) <= SAMPLE_MEMO_ROWS:
            if len(_SAMPLES) >= SAMPLE_MEMO_SIZE:
                _SAMPLES.clear()
            _SAMPLES[key] = hit
    return hit


def _sampled(problem: Problem, nlev: int, canonical: bool, budget: int, seed: int,
             feasible: tuple) -> tuple[int, list, list, list]:
    """:func:`_sample` for ``feasible``: per spatial unrolling, its feasible splits' chain
    index rows (count, int64 bytes)."""
    ranks = problem.ranks
    spaces = []
    for spatial, n, raw in feasible:
        sp = {r: x for r, x in (*spatial[0], *spatial[1])}
        chains = {r: _divisor_chains(problem.size[r] // sp.get(r, 1), nlev, (True,) * nlev)
                  for r in ranks}
        spaces.append((spatial, chains, np.frombuffer(raw, dtype=np.int64).reshape(n, len(ranks))))
    space, point_at = _space(ranks, nlev, spaces, canonical)
    if not space:
        return 0, [], [], []
    if space <= budget:
        chosen = np.arange(space, dtype=np.int64)
    else:
        chosen = np.sort(np.random.default_rng(seed).choice(space, size=budget, replace=False))
    points = point_at(chosen)
    return space, points, _score_arrays(problem, nlev, points), [None] * len(points)


def _space(ranks: tuple[str, ...], nlev: int, spaces: list[tuple], canonical: bool):
    """The search space as counts: its size and a function from sorted point indices to
    those points, ``(spatial, split, orders)``, in the enumeration order (per spatial
    unrolling of ``spaces``, ``(spatial, chains, feasible rows)``, per feasible split as
    :func:`_feasible` lists them, per loop-order choice in ``itertools.product`` order over
    the levels). Only the points asked for are built: a sampled search looks at ``budget`` of
    a space often several times larger."""
    blocks = []                # (spatial, chains, split rows, per-level orders per split)
    counts = []
    for spatial, chains, rows in spaces:
        if not len(rows):
            continue
        # which ranks loop (factor > 1) at each level: one row of flags per split
        loops = np.concatenate([(np.asarray(chains[r], dtype=np.int64).reshape(-1, nlev) > 1)
                                [rows[:, a]] for a, r in enumerate(ranks)], axis=1)
        keys, inverse = np.unique(loops, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        choices = [_level_orders(tuple(k.tolist()), ranks, nlev, canonical) for k in keys]
        blocks.append((spatial, chains, rows, [choices[i] for i in inverse.tolist()]))
        counts.append(np.array([math.prod(map(len, c)) for c in choices],
                               dtype=np.int64)[inverse])
    per_split = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    ends = np.cumsum(per_split)
    space = int(ends[-1]) if len(ends) else 0
    block_of = np.repeat(np.arange(len(blocks)), [len(b[2]) for b in blocks])
    first = np.concatenate([[0], np.cumsum([len(b[2]) for b in blocks])]).astype(np.int64)

    def point_at(indices: np.ndarray) -> list[tuple]:
        out = []
        at = np.searchsorted(ends, indices, side="right")
        for idx, g in zip(indices.tolist(), at.tolist(), strict=True):
            b = int(block_of[g])
            spatial, chains, rows, choices = blocks[b]
            j = g - int(first[b])
            rem = idx - (int(ends[g]) - int(per_split[g]))
            per_level = choices[j]
            picks = []
            for level in reversed(per_level):    # product order: the last level fastest
                rem, pick = divmod(rem, len(level))
                picks.append(level[pick])
            split = {r: chains[r][i] for r, i in zip(ranks, rows[j].tolist(), strict=True)}
            out.append((spatial, split, tuple(reversed(picks))))
        return out
    return space, point_at


@lru_cache(maxsize=4096)
def _level_orders(loops: tuple[bool, ...], ranks: tuple[str, ...], nlev: int,
                  canonical: bool) -> tuple[list[tuple[str, ...]], ...]:
    """Per level, the loop orders to try (:func:`_orders`) when rank ``a`` loops at level
    ``lvl`` where ``loops[a * nlev + lvl]``."""
    return tuple(_orders(tuple(r for a, r in enumerate(ranks) if loops[a * nlev + lvl]),
                         canonical) for lvl in range(nlev))


def _score_points(problem: Problem, arch: SpatialArch, points: list, chosen,
                  bypass: frozenset, convention: str) -> tuple[list[float], list[float]]:
    """Latency and energy of the chosen points, as :func:`evaluate` gives them, vectorised over
    each run of points that share a spatial unrolling (:func:`evaluate_batch`)."""
    picked = [points[i] for i in chosen]
    return _score_runs(problem, arch, _score_arrays(problem, len(arch.levels), picked), bypass,
                       convention)


def _score_arrays(problem: Problem, nlev: int, points: list) -> list[tuple]:
    """Per run of ``points`` that share a spatial unrolling: (spatial, rank index per loop slot
    (-1 where a level has fewer loops), factor per loop slot), as :func:`evaluate_batch` reads
    them."""
    ranks = problem.ranks
    slots = len(ranks)
    index = {r: i for i, r in enumerate(ranks)}
    level_of = np.repeat(np.arange(nlev), slots)[None, :]
    rows: dict[tuple, tuple[int, ...]] = {}   # loop orders -> padded rank indices
    runs = []
    start = 0
    while start < len(points):
        spatial = points[start][0]
        end = start
        while end < len(points) and points[end][0] == spatial:
            end += 1
        n = end - start
        rk_rows, split_rows = [], []
        for _, split, orders in points[start:end]:
            row = rows.get(orders)
            if row is None:
                row = rows[orders] = tuple(itertools.chain.from_iterable(
                    [index[r] for r in order] + [-1] * (slots - len(order))
                    for order in orders))
            rk_rows.append(row)
            split_rows.append(tuple(split[r] for r in ranks))
        rk = np.array(rk_rows, dtype=np.int64).reshape(n, nlev * slots)
        factor = np.array(split_rows, dtype=np.int64).reshape(n, slots, nlev)
        xs = np.where(rk >= 0, factor[np.arange(n)[:, None], np.maximum(rk, 0), level_of], 1)
        rk.setflags(write=False)     # kept by _sample for the next search: read only
        xs.setflags(write=False)
        runs.append((spatial, rk, xs))
        start = end
    return runs


def _score_runs(problem: Problem, arch: SpatialArch, runs: list[tuple], bypass: frozenset,
                convention: str) -> tuple[list[float], list[float]]:
    """Latency and energy of each point of ``runs`` (:func:`_score_arrays`) on ``arch``, as
    :func:`mappings.cost.evaluate_batch` gives them. The figures before any bandwidth is read
    (:func:`mappings.cost.batch_counts`) are kept per run and arch up to its levels'
    bandwidths and capacities (:data:`_BATCH_COUNTS`): a dataflow chip's PCU share mapped again
    with another PMU share keeps its sample, and only its PMU bandwidth moves."""
    lats: list[float] = []
    energies: list[float] = []
    slots = len(problem.ranks)
    shape = unsized(arch)
    for spatial, rk, xs in runs:
        key = (problem, id(shape), spatial, bypass, id(rk), id(xs))
        hit = _BATCH_COUNTS.get(key)
        if hit is not None and hit[0] is rk and hit[1] is xs and hit[2] is shape:
            counts = hit[3]
        else:
            counts = batch_counts(problem, arch, spatial, bypass, rk, xs, slots)
            if len(_BATCH_COUNTS) >= BATCH_COUNTS_MEMO_SIZE:
                _BATCH_COUNTS.clear()
            _BATCH_COUNTS[key] = (rk, xs, shape, counts)   # keeps what its ids name alive
        lats.extend(batch_latency(counts, arch, convention).tolist())
        energies.extend(counts.energy.tolist())
    return lats, energies


#: :func:`mappings.cost.batch_counts` per (problem, arch up to bandwidths and capacities
#: (:func:`mappings.cost.unsized`), spatial unrolling, bypass, scoring arrays) (cleared when
#: full: a bound on memory, the arrays of a search's sample being ~100 kB)
BATCH_COUNTS_MEMO_SIZE = 64
_BATCH_COUNTS: dict[tuple, tuple] = {}


def clear_memos() -> None:
    """Forget every search, sample, count, divisor chain and loop order kept (this module's
    and :mod:`mappings.cost`'s: :func:`mappings.cost.clear_memos`), so that the next search
    is as cold as a fresh process's."""
    from mappings import cost

    cost.clear_memos()
    for cached in (_search, _divisor_chains, _divisors, _level_orders):
        cached.cache_clear()
    for memo in (_SAMPLES, _BATCH_COUNTS, _CUT_TERMS):
        memo.clear()


def _merged(nest: tuple) -> tuple:
    """The nest with adjacent loops of one rank merged (n4 n4 -> n16) and unit loops dropped."""
    out: list[list] = []
    for r, x in nest:
        if x == 1:
            continue
        if out and out[-1][0] == r:
            out[-1][1] *= x
        else:
            out.append([r, x])
    return tuple(map(tuple, out))


def _fits(problem: Problem, arch: SpatialArch, mapping: Mapping) -> bool:
    try:
        validate(problem, arch, mapping)
    except MappingError:
        return False
    return True


def best_latency(problem: Problem, arch: SpatialArch, **kw) -> float:
    """Cycles of the best mapping (a convenience for sweeps)."""
    return search(problem, arch, **kw).cost.latency_cycles


def lower_bound_ratio(result: MapperResult) -> float:
    """DRAM traffic of the best mapping over the problem's I/O lower bound."""
    return result.cost.io_ratio if result.cost.io_lower_bound_bytes else math.inf
