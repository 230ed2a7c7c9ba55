"""The mapper's vectorised scoring (mappings.cost.evaluate_batch, search(fast=True)) gives exactly
what the reference path (mappings.cost.evaluate on each nest, search(fast=False)) gives: every
candidate's latency and energy bit for bit, and the same best mapping, cost and counts."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time

import numpy as np
import pytest

from arch import load_arch
from mappings import mapper
from mappings.cost import evaluate, evaluate_batch
from mappings.mapper import search
from mappings.mapping import Problem, gemm_problem
from mappings.spec import Level, SpatialArch, from_npu_arch
from mappings.zigzag import scalesim_matched_arch, tpu_like_arch


def _r4() -> SpatialArch:
    return scalesim_matched_arch(32, 32, 256, 256, 128, 32)


def _toy_double() -> SpatialArch:
    """Double-buffered shared level with finite bandwidth and a port width (other branches)."""
    return SpatialArch("toy2", (
        Level("dram", ("I", "W", "O"), math.inf, 4.0, 1.0, 1.5),
        Level("buf", ("I", "W", "O"), 4096.0, 16.0, 0.1, 0.2, double_buffered=True,
              port_bytes=8.0),
        Level("reg", ("I", "W", "O"), 12.0, math.inf, 0.01, 0.01, per_pe=True),
    ), rows=4, cols=4, mac_energy=0.001, psum_bytes=2.0)


def _broadcast_problem() -> Problem:
    """A rank (n) irrelevant to two operands: non-canonical loop orders (all permutations)."""
    return Problem("bcast", (("m", 16), ("n", 8), ("k", 16)),
                   (("I", ("m", "k")), ("W", ("k",)), ("O", ("m", "n"))))


def _points(problem: Problem, arch: SpatialArch, dataflow, bypass=frozenset()):
    """Every nest the search enumerates (same enumeration as mappings.mapper._search)."""
    nlev = len(arch.levels)
    canonical = all(sum(r not in problem.ranks_of(op) for op in ("I", "W", "O")) <= 1
                    for r in problem.ranks)
    out = []
    for spatial in mapper.spatial_candidates(problem, arch, dataflow):
        sp = {r: x for r, x in (*spatial[0], *spatial[1])}
        chains = {r: mapper._divisor_chains(problem.size[r] // sp.get(r, 1), nlev,
                                            (True,) * nlev) for r in problem.ranks}
        for combo in mapper._feasible(problem, arch, chains, sp, bypass):
            split = dict(zip(problem.ranks, combo, strict=True))
            base = tuple(tuple(r for r in problem.ranks if split[r][lv] > 1)
                         for lv in range(nlev))
            for orders in itertools.product(*[mapper._orders(o, canonical) for o in base]):
                out.append((spatial, split, orders))
    return out


CASES = [
    (gemm_problem(512, 512, 512), _r4(), "ws", frozenset()),
    (gemm_problem(512, 512, 512), tpu_like_arch(), "ws", frozenset()),
    (gemm_problem(64, 4096, 256), tpu_like_arch(), None, frozenset()),
    (gemm_problem(48, 40, 36), _toy_double(), None, frozenset()),
    (gemm_problem(48, 40, 36), _toy_double(), None, frozenset({("buf", "W")})),
    (_broadcast_problem(), _toy_double(), None, frozenset()),
]


@pytest.mark.parametrize("convention", ["zigzag", "overlap"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_batch_scores_equal_evaluate_bit_for_bit(case, convention):
    problem, arch, dataflow, bypass = CASES[case]
    pts = _points(problem, arch, dataflow, bypass)
    assert len(pts) > 20
    if len(pts) > 3000:     # every 7th nest keeps the reference loop short
        pts = pts[::7]
    lats, ens = mapper._score_points(problem, arch, pts, range(len(pts)), bypass, convention)
    for i, (spatial, split, orders) in enumerate(pts):
        m = mapper._build(problem, arch, split, orders, spatial, bypass)
        ref = evaluate(problem, arch, m, convention, check=False, detail=False)
        assert (lats[i], ens[i]) == (ref.latency_cycles, ref.energy_total), (i, m)


def test_batch_matches_hand_count():
    """One nest by hand: M=N=K=4 on a 2x2 toy array, everything in one buffer pass."""
    arch = SpatialArch("toy", (
        Level("dram", ("I", "W", "O"), math.inf, 4.0, 1.0, 1.0),
        Level("buf", ("I", "W", "O"), 64.0, math.inf, 0.1, 0.1),
    ), rows=2, cols=2, mac_energy=0.01)
    p = gemm_problem(4, 4, 4)
    # dram: n2; buf: k4 m4; spatial cols n2 (as tests/test_mappings.py hand count)
    rk = np.array([[1, -1, -1, 2, 0, -1]])
    xs = np.array([[2, 1, 1, 4, 4, 1]])
    lat, en = evaluate_batch(p, arch, ((), (("n", 2),)), frozenset(), rk, xs, 3, "overlap")
    # compute 64 MACs / 2 PEs; DRAM moves I, W, O once (48 B at 4 B/cycle); on-load: the first
    # I tile (m4 k4 = 16) and W tile (k4 x n2 spatial = 8) at 4 B/cycle
    compute = 64 / 2
    assert lat[0] == max(compute, 48 / 4.0) + min((16 + 8) / 4.0, 48 / 4.0)
    # buffer: fills I 16 + W 16 B, output drained 16 B; per MAC I read once per column pair
    # (multicast: 64/2 = 32), W 64; partial sums read and written 64 times each at the
    # default 4-byte accumulation width (512 B)
    buf_bytes = 16 + 16 + 16 + 32 + 64 + 2 * 64 * 4
    assert en[0] == pytest.approx(48 * 1.0 + buf_bytes * 0.1 + 64 * 0.01)


SEARCHES = [
    (gemm_problem(512, 512, 512), _r4(), dict(dataflow="ws", convention="zigzag")),
    (gemm_problem(512, 512, 512), tpu_like_arch(), dict(dataflow="ws", convention="zigzag")),
    (gemm_problem(1024, 4096, 1024), tpu_like_arch(), dict(dataflow="ws", convention="zigzag")),
    (gemm_problem(64, 4096, 4096), _r4(), dict(dataflow="ws", convention="zigzag",
                                               objective="energy")),
    (gemm_problem(256, 512, 384), from_npu_arch(load_arch("neupims-npu")),
     dict(budget=300, seed=3)),                                   # sampled, not exhaustive
    (gemm_problem(96, 80, 72), _toy_double(), dict(objective="edp")),
    (_broadcast_problem(), _toy_double(), dict(objective="energy",
                                               bypass=frozenset({("buf", "W")}))),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_sample_reads_the_points_the_enumeration_lists(case):
    """The search's space as counts (mappings.mapper._sample) has as many points as the full
    enumeration above and gives every point of it in order within a budget over its size,
    and the very points a draw of 60 indices (numpy default_rng(seed)) names within one of 60."""
    problem, arch, dataflow, bypass = CASES[case]
    pts = _points(problem, arch, dataflow, bypass)
    canonical = all(sum(r not in problem.ranks_of(op) for op in ("I", "W", "O")) <= 1
                    for r in problem.ranks)
    space, every, _, _ = mapper._sample(problem, arch, dataflow, bypass, canonical, 10 ** 9, 0)
    assert space == len(pts)
    assert every == pts
    drawn = sorted(np.random.default_rng(case).choice(len(pts), 60, replace=False).tolist())
    space, some, runs, _ = mapper._sample(problem, arch, dataflow, bypass, canonical, 60, case)
    assert some == [pts[i] for i in drawn]
    assert sum(len(rk) for _, rk, _ in runs) == 60


def test_samples_kept_are_bounded(monkeypatch):
    """The mapper keeps a search's sample for the next search of the same problem and
    feasible splits (the same objects), keeps no sample over SAMPLE_MEMO_POINTS points, and
    holds at most SAMPLE_MEMO_SIZE."""
    arch = _toy_double()
    monkeypatch.setattr(mapper, "SAMPLE_MEMO_SIZE", 2)
    mapper._SAMPLES.clear()
    got = [mapper._sample(gemm_problem(48, 40, 4 * k), arch, None, frozenset(), True, 60, 0)
           for k in (3, 4, 5)]
    assert len(mapper._SAMPLES) == 1          # cleared at the third: 2 held, then 1
    again = mapper._sample(gemm_problem(48, 40, 20), arch, None, frozenset(), True, 60, 0)
    assert again is got[2] and again[1] is got[2][1]
    mapper._SAMPLES.clear()
    mapper._sample(gemm_problem(48, 40, 20), arch, None, frozenset(), True,
                   mapper.SAMPLE_MEMO_POINTS + 1, 0)
    assert not mapper._SAMPLES


@pytest.mark.parametrize("case", range(len(SEARCHES)))
def test_fast_search_equals_reference_search(case):
    problem, arch, kw = SEARCHES[case]
    fast = search(problem, arch, **kw)
    ref = search(problem, arch, fast=False, **kw)
    assert fast.mapping == ref.mapping
    assert dataclasses.asdict(fast.cost) == dataclasses.asdict(ref.cost)
    assert (fast.evaluated, fast.space, fast.exhaustive) == \
        (ref.evaluated, ref.space, ref.exhaustive)


def test_fast_search_is_faster():
    """CPU time (median of 3 cold searches) of the vectorised path vs the reference on R5."""
    p, arch = gemm_problem(512, 512, 512), tpu_like_arch()

    def cpu(fast: bool) -> float:
        times = []
        for _ in range(3):
            mapper.clear_memos()
            t0 = time.process_time()
            search(p, arch, dataflow="ws", convention="zigzag", fast=fast)
            times.append(time.process_time() - t0)
        return sorted(times)[1]

    assert cpu(False) / cpu(True) > 2.0


@pytest.mark.parametrize("n, parts, count", [(12, 3, 18), (2048, 2, 12), (2560, 3, 165),
                                             (1, 4, 1), (97, 2, 2)])
def test_divisor_chains_are_every_ordered_factorisation(n, parts, count):
    """n = prod p^a in ``parts`` ordered factors: prod C(a + parts - 1, parts - 1) ways, by
    hand (12 = 2^2 x 3 in 3: 6 x 3; 2048 = 2^11 in 2: 12; 2560 = 2^9 x 5 in 3: 55 x 3; a
    prime in 2: 2), each once, in ascending order; a factor not allowed is 1."""
    chains = mapper._divisor_chains(n, parts, (True,) * parts)
    assert len(chains) == len(set(chains)) == count
    assert all(math.prod(c) == n and len(c) == parts for c in chains)
    assert list(chains) == sorted(chains)
    pinned = mapper._divisor_chains(n, parts, (False,) + (True,) * (parts - 1))
    assert [c[1:] for c in pinned] == list(mapper._divisor_chains(n, parts - 1,
                                                                  (True,) * (parts - 1)))


def _variant(arch: SpatialArch, level: int, **change) -> SpatialArch:
    levels = list(arch.levels)
    levels[level] = dataclasses.replace(levels[level], **change)
    return dataclasses.replace(arch, levels=tuple(levels))


@pytest.mark.parametrize("change, shared", [
    (dict(bandwidth=3.0), True), (dict(capacity=8192.0), True),
    (dict(read_energy=0.3), False), (dict(port_bytes=4.0), False),
    (dict(double_buffered=False), False)])
def test_counts_kept_across_archs_equal_fresh_figures(change, shared, monkeypatch):
    """The counts of a mapping worked out before any bandwidth is read are kept per arch up to
    its levels' bandwidths and capacities (mappings.cost.score_kept's _COUNTS; the search's
    scoring arrays' in mappings.mapper._BATCH_COUNTS): on the toy arch with its buffer
    changed, a mapping's score and a whole search equal what they are with nothing kept
    (``evaluate``, which keeps nothing); a change of bandwidth or capacity reuses the
    mapping's counts and the search's (no entry added), one of energy, port width or
    buffering does not. Port-bound by hand: the buffer at 3 B/cycle instead of 16 makes the
    latency max(compute, moved / 3) + on-load. (The per-operand cuts' capacity-free terms,
    mappings.mapper._CUT_TERMS, are kept the same way and emptied for the fresh search.)"""
    from mappings import cost

    arch, problem = _toy_double(), gemm_problem(24, 20, 18)   # (a sample of 400 is kept)
    other = _variant(arch, 1, **change)
    for name in ("_SAMPLES", "_BATCH_COUNTS", "_CUT_TERMS"):
        monkeypatch.setattr(mapper, name, {})
    monkeypatch.setattr(cost, "_COUNTS", {})
    mapper._search.cache_clear()
    kept = search(problem, arch, budget=400)     # fills both memos (its sample is kept)
    cost.score_kept(problem, arch, kept.mapping)
    held = len(cost._COUNTS)
    got = cost.score_kept(problem, other, kept.mapping)
    assert len(cost._COUNTS) == held + (0 if shared else 1)
    held = len(mapper._BATCH_COUNTS)
    best = search(problem, other, budget=400)
    assert (len(mapper._BATCH_COUNTS) == held) == shared
    for name in ("_SAMPLES", "_BATCH_COUNTS", "_CUT_TERMS"):
        monkeypatch.setattr(mapper, name, {})
    monkeypatch.setattr(cost, "_COUNTS", {})
    mapper._search.cache_clear()
    ref = evaluate(problem, other, kept.mapping, check=False)
    assert (got.latency_cycles, got.energy_total) == (ref.latency_cycles, ref.energy_total)
    fresh = search(problem, other, budget=400)
    assert best.mapping == fresh.mapping
    assert dataclasses.asdict(best.cost) == dataclasses.asdict(fresh.cost)
    if change == dict(bandwidth=3.0):
        moved = sum(sum(a.values()) for a in ref.accesses["buf"].values()) * 1.0
        # the toy's words are 1 B; the buffer is the only level between DRAM and the PEs
        assert ref.latency_cycles == pytest.approx(
            max(ref.compute_cycles, moved / 3.0, ref.dram_bytes / 4.0) + ref.onload_cycles)


def test_clear_memos_leaves_no_memo_of_the_mapper_or_its_cost_model():
    """``mapper.clear_memos`` makes the next search as cold as a fresh process's: after a
    search fills them, every ``functools`` cache and every module-level memo dict of
    mappings.mapper and mappings.cost is empty (found by walking the modules, so a memo added
    later and not cleared there fails this)."""
    from mappings import cost

    mapper.clear_memos()
    arch, problem = _toy_double(), gemm_problem(24, 20, 18)
    found = search(problem, arch, budget=400)
    cost.score_kept(problem, arch, found.mapping)
    memos = [(mod.__name__, name, value) for mod in (mapper, cost)
             for name, value in vars(mod).items()
             if callable(getattr(value, "cache_info", None))
             or (name.startswith("_") and name.isupper() and isinstance(value, dict))]
    assert {name for _, name, _ in memos} >= {"_search", "_context", "_SAMPLES", "_COUNTS",
                                               "_BATCH_COUNTS", "_CUT_TERMS", "_UNSIZED"}
    full = [name for _, name, v in memos
            if (v.cache_info().currsize if hasattr(v, "cache_info") else len(v))]
    assert {"_search", "_context", "_divisors", "_SAMPLES", "_COUNTS"} <= set(full)
    mapper.clear_memos()
    left = [f"{m}.{name}" for m, name, v in memos
            if (v.cache_info().currsize if hasattr(v, "cache_info") else len(v))]
    assert left == []
