"""The engine's compiled loops built ahead of time, as the DRAM kernels are.

Importing numba and loading its cached machine code costs a fresh process ~0.7 CPU s, more
than the windows of a 128-token 70B ``--overlap`` run take compiled. numba's ``pycc`` compiles
the loops themselves (no second copy) into one extension that needs only numpy, built on first
use and kept beside the DRAM kernels' (:mod:`sim.micro.dram_aot`: the same directories, naming
by a hash of the sources and tool versions, ``.failed`` markers):

* :func:`sim.beside_kernel.stamp_beside`: collectives beside a run's ops, their memory shared;
* :func:`sim.dag_kernel.dag_times`: the start and end of every op of a run without contention
  (:mod:`sim.engine_dag`; for 64- and 32-bit dependency arrays, ``dag_times_i4``);
* :func:`sim.shared_kernel.shared_times`: the same where transfers share resources, each
  resource's sharing replayed (:mod:`sim.engine_shared`; it and ``replay_shared`` below also
  for 32-bit dependency arrays, ``_i4``);
* :func:`sim.replay_kernel.replay_shared` and :func:`sim.replay_kernel.settled`: that run's
  decode, timed as a longest path (``dag_times`` with floors), its sharing replayed on those
  times and the times checked against it;
* :func:`sim.sum_kernel.gathered_pairwise`: numpy's sum of a per-kind column gathered by
  each op's kind, without gathering it (:func:`sim.columns.gathered_sum`), and
  :func:`sim.sum_kernel.load_sums`, rows' tuples of link loads summed per resource in row
  order;
* :func:`sim.quiet_kernel.stamp_quiet`: a quiet run of a stream with a contended memory;
* :func:`sim.bound_kernel.quiet_until`: how long a contended resource stays quiet, and
  :func:`sim.bound_kernel.stream_sums`, the running sums it reads;
* :func:`sim.scan_kernel.scan_run`: where a quiet run may end, and the ops it runs beside;
* :func:`sim.step_kernel.quiet_step`: a quiet run's scan, adoptions, stamp and what it took,
  in one call (:func:`sim.step_kernel.quiet_step_at`: the same, its arrays by address);
* :func:`sim.span_kernel.stamp_span`: a span of a plain run, loaded ops alone on their links;
* :func:`sim.handoff_kernel.handoff_pairs`: which op of another stream a run may stamp;
* :func:`sim.plan_kernel.stream_keys`: each op's stage and stream key in a plan;
* :func:`sim.runs_kernel.stage_runs`: a stage's placement runs, their first ops and sums
  (:func:`sim.runs_kernel.stage_members`: the ops of each stage's runs);
* :func:`sim.deps_kernel.task_deps`: a planned run's dependency table (ops, their waits on
  transfers, the transfers'), for 32- and 64-bit dependency arrays (``_i4`` / ``_i8``), and
  a 32-bit table from 32-bit arrays (``_narrow``);
* :func:`sim.lane_kernel.quiet_lanes`: what each stream with a contended memory reads per
  position;
* :func:`sim.layout_kernel.stream_layout`: the ops by stream, each op's neighbours and
  position on its stream (:func:`sim.layout_kernel.stream_positions`: the positions later);
* :func:`sim.pair_kernel.gather_pairs`: each op's bytes, duration alone, share flag and
  latency from its (op kind, stream) pair;
* :func:`sim.deps_kernel.cross_counts`, :func:`sim.deps_kernel.cross_pairs`: the
  dependencies between streams, and :func:`sim.deps_kernel.late_dependency`, the invariant
  check that no op starts before a dependency ends (each for 32- and 64-bit dependency
  arrays, ``_i4`` / ``_i8``);
* :func:`sim.take_kernel.take_rows`: a row range of several per-kind columns gathered at
  once (the report's ops.parquet, a row group at a time), and
  :func:`sim.take_kernel.take_codes`, a text column's codes through its lookup table;
* :func:`sim.group_kernel.first_groups` without ids: the op kinds in the order they first
  occur (a long run's kinds to price, :func:`sim.columns.first_occurrences`);
* :mod:`sim.group_kernel` (``point_groups``, ``group_sums``, ``row_sums``,
  ``compensated_sums``,
  ``used_labels``, ``lut_key``, ``offset_key``, ``first_groups``, ``distinct_marked``; for
  8-, 32- and 64-bit integers, ``_i1`` / ``_i4`` / ``_i8``): the run report's roofline
  points, the labels its text columns use, its summed rows' keys, groups and sums and its
  decode steps (not engine loops: built here so that a report loads no second extension).

Without a C compiler, or with ``XPUSIM_ENGINE_AOT=0``, the numba dispatchers run instead: both
give the same floats (tests/test_beside_kernel.py, tests/test_engine_dag.py,
tests/test_span_scan_kernels.py, tests/test_quiet_kernel.py, tests/test_bound_kernel.py).
"""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

from sim.micro import dram_aot

HERE = Path(__file__).resolve().parent
#: files whose text decides the compiled code
SOURCES = ("beside_kernel.py", "bound_kernel.py", "compensated.py", "dag_kernel.py",
           "deps_kernel.py", "engine_aot.py",
           "group_kernel.py", "handoff_kernel.py", "lane_kernel.py", "layout_kernel.py",
           "pair_kernel.py", "plan_kernel.py",
           "quiet_kernel.py", "replay_kernel.py",
           "resources.py", "run_kernel.py", "runs_kernel.py",
           "scan_kernel.py", "shared_kernel.py", "span_kernel.py", "step_kernel.py",
           "sum_kernel.py", "take_kernel.py",
           "micro/dram_aot.py")
_I, _F = "i8[::1]", "f8[::1]"
#: stamp_beside(run, cuts, place_pos, place_y, wait_pos, wait_ptr, wait_y, t, lat, dur, size,
#:              stream, free, rate_ok, rate, quiet, limit_of, moved, busy, last, start, end,
#:              y_end)
BESIDE_SIG = (f"Tuple((i8, f8, i8, f8, f8, f8))({_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, f8, "
              f"{_F}, {_F}, {_F}, {_I}, {_F}, b1, f8, f8, {_F}, f8, f8, f8, {_F}, {_F}, {_F})")
BESIDE_ARGS = ((("i8", 1),) * 7 + (None,) + (("f8", 1),) * 3 + (("i8", 1), ("f8", 1))
               + (None,) * 3 + (("f8", 1),) + (None,) * 3 + (("f8", 1),) * 3)

#: dag_times(first, fixed, dep_ptr, dep_idx, prev, dur, floor, start, end) -> whether the deps
#: precede each op, for 64- and 32-bit dependency arrays (a trace's own are 32-bit: no
#: table-long copy)
DAG_SIG = {w: f"b1(i8, u1[::1], {w}[::1], {w}[::1], {_I}, {_F}, {_F}, {_F}, {_F})"
           for w in ("i8", "i4")}
DAG_ARGS = {w: (None, ("u1", 1)) + ((w, 1),) * 2 + (("i8", 1),) + (("f8", 1),) * 4
            for w in ("i8", "i4")}

#: shared_times(dep_ptr, dep_idx, prev, lat, op_list, list_ptr, list_res, list_nb, op_mem,
#:              op_size, share, bw, reserved, by_stream, bounds, start, end, moved, busy,
#:              last, head, paused, where) -> DONE, PAUSED or why not (sim/shared_kernel.py)
SHARED_SIG = (f"i8({_I}, {_I}, {_I}, {_F}, {_I}, {_I}, {_I}, {_F}, {_I}, {_F}, {_F}, {_F}, "
              f"{_F}, {_I}, {_I}, {_F}, {_F}, {_F}, {_F}, {_F}, i8, {_I}, {_I})")
SHARED_ARGS = ((("i8", 1),) * 3 + (("f8", 1),) + (("i8", 1),) * 3 + (("f8", 1),)
               + (("i8", 1),) + (("f8", 1),) * 4 + (("i8", 1),) * 2 + (("f8", 1),) * 5
               + (None, ("i8", 1), ("i8", 1)))
#: the same with 32-bit dependency arrays (a trace's own: no table-long copy)
SHARED_SIG_I4 = SHARED_SIG.replace(f"i8({_I}, {_I}, ", "i8(i4[::1], i4[::1], ", 1)
SHARED_ARGS_I4 = (("i4", 1),) * 2 + SHARED_ARGS[2:]

#: replay_shared(dep_ptr, dep_idx, prev, start, end, op_list, list_ptr, list_res, list_nb,
#: op_mem, op_size, bw, by_stream, bounds, first, walk, mine, after, finish, moved, busy,
#: last, where) -> DONE, LATE or why not; settled(first, fixed, start, end, lat, finish,
#: finish2, floor) -> ops off (sim/replay_kernel.py)
REPLAY_SIG = (f"i8({_I}, {_I}, {_I}, {_F}, {_F}, {_I}, {_I}, {_I}, {_F}, {_I}, {_F}, {_F}, "
              f"{_I}, {_I}, {_I}, u1[::1], u1[::1], b1, {_F}, {_F}, {_F}, {_F}, {_I})")
REPLAY_ARGS = ((("i8", 1),) * 3 + (("f8", 1),) * 2 + (("i8", 1),) * 3 + (("f8", 1),)
               + (("i8", 1),) + (("f8", 1),) * 2 + (("i8", 1),) * 3 + (("u1", 1),) * 2
               + (None,) + (("f8", 1),) * 4 + (("i8", 1),))
REPLAY_SIG_I4 = REPLAY_SIG.replace(f"i8({_I}, {_I}, ", "i8(i4[::1], i4[::1], ", 1)
REPLAY_ARGS_I4 = (("i4", 1),) * 2 + REPLAY_ARGS[2:]
SETTLED_SIG = f"i8(i8, u1[::1], {_F}, {_F}, {_F}, {_F}, {_F}, {_F})"
SETTLED_ARGS = (None, ("u1", 1)) + (("f8", 1),) * 6

#: scan_run's ``moved`` entry of a stream no op beside moved on
NOT_MOVED = -2
_U = "u1[::1]"
#: scan_run(k, m, cut, first, blocked, stops, waits_left, ends_run, ids, wait_at, wait_on,
#:          done, beside, cap, next_op, stream, sleep_on, moved, out_pos, out_y)
SCAN_SIG = (f"Tuple((i8, b1, i8))(i8, i8, i8, i8, {_I}, {_U}, {_U}, {_U}, {_I}, {_I}, {_I}, "
            f"{_U}, {_I}, i8, {_I}, {_I}, {_I}, {_I}, {_I}, {_I})")
SCAN_ARGS = ((None,) * 4 + (("i8", 1),) + (("u1", 1),) * 3 + (("i8", 1),) * 3 + (("u1", 1),)
             + (("i8", 1), None) + (("i8", 1),) * 6)

#: stamp_span(a, b, t0, dur, ids, loaded_at, load_ptr, load_pos, load_res, load_nb, try_loaded,
#:            ok, rate, bound, moved, busy, last, start, end, times, timers)
SPAN_SIG = (f"Tuple((i8, f8, i8, i8, i8))(i8, i8, f8, {_F}, {_I}, {_I}, {_I}, {_I}, {_I}, {_F}, "
            f"b1, {_U}, {_F}, {_F}, {_F}, {_F}, {_F}, {_F}, {_F}, {_F}, {_F})")
SPAN_ARGS = ((None,) * 3 + (("f8", 1),) + (("i8", 1),) * 5 + (("f8", 1),) + (None,)
             + (("u1", 1),) + (("f8", 1),) * 9)

#: stamp_quiet's ``want`` when the memory's bound is needed first
WANT_MEMORY = -2
#: a link's ``ok`` entry in stamp_quiet whose state the caller has not filled in yet
UNKNOWN = 2
#: stamp_quiet(run, t0, dur, size, of_op, ptr, res, nb, memory, ok, rate, bound, moved, busy,
#:             last, start, end, times)
QUIET_SIG = (f"Tuple((i8, f8, i8))({_I}, f8, {_F}, {_F}, {_I}, {_I}, {_I}, {_F}, {_F}, {_U}, "
             f"{_F}, {_F}, {_F}, {_F}, {_F}, {_F}, {_F}, {_F})")
QUIET_ARGS = ((("i8", 1), None) + (("f8", 1),) * 2 + (("i8", 1),) * 3 + (("f8", 1),) * 2
              + (("u1", 1),) + (("f8", 1),) * 8)

#: stamp_bounded(stamp_quiet's arguments, mem_rc, link_rc, busy0, now, quiet_until's arguments
#:               after ``now`` but ``end``)
_BOUND_TAIL = (f"{_I}, {_I}, {_I}, {_I}, i8, {_I}, {_F}, {_I}, {_F}, {_I}, {_F}, {_I}, {_I}, "
               f"{_I}, {_U}, {_I}, {_I}, f8")
BOUNDED_SIG = f"{QUIET_SIG[:-1]}, i8, {_I}, i8, f8, {_BOUND_TAIL})"
BOUNDED_ARGS = QUIET_ARGS + (None, ("i8", 1), None, None) + (("i8", 1),) * 4 + \
    (None, ("i8", 1), ("f8", 1), ("i8", 1), ("f8", 1), ("i8", 1), ("f8", 1)) + \
    (("i8", 1),) * 3 + (("u1", 1),) + (("i8", 1),) * 2 + (None,)

#: quiet_step's status: no position taken, ops beside (Python stamps them), a buffer too
#: short, a link's state wanted, stamped
STEP_NONE, STEP_BESIDE, STEP_GROW, STEP_WANT, STEP_STAMPED = 0, 1, 2, 3, 4
#: quiet_step's parameters (sim/step_kernel.py) and their types: arrays (1-d, C order) by
#: their dtype's letter and width in capitals, scalars in lower case
STEP_PARAMS = (
    "k:i8 m:i8 cut:i8 first:i8 lead:i8 cap:i8 now:f8 mem_rc:i8 own:i8 blocked:I8 stops:U1 "
    "waits_left:U1 ends_run:U1 ids:I8 adopt_at:I8 wait_at:I8 wait_on:I8 done:U1 beside:I8 "
    "next_op:I8 stream:I8 sleep_on:I8 moved:I8 out_pos:I8 out_y:I8 adopt_after:I8 "
    "run_buf:I8 dur:F8 size:F8 of_op:I8 ptr:I8 res:I8 nb:F8 memory:F8 ok:U1 rate:F8 "
    "bound:F8 link_moved:F8 link_busy:F8 link_last:F8 start:F8 end:F8 times:F8 link_rc:I8 "
    "users_ptr:I8 users:I8 use_ptr:I8 use_pos:I8 n_streams:i8 cum_ptr:I8 cum:F8 "
    "stream_ops:I8 st_kind:I8 st_t:F8 st_op:I8 position:I8 slack:f8").split()
_STEP_TYPES = [p.split(":")[1] for p in STEP_PARAMS]
STEP_SIG = ("Tuple((i8, i8, i8, i8, i8, f8, i8, i8, i8))("
            + ", ".join(t if t.islower() else f"{t.lower()}[::1]" for t in _STEP_TYPES) + ")")
STEP_ARGS = tuple(None if t.islower() else (t.lower(), 1) for t in _STEP_TYPES)
#: quiet_step_at (sim/step_kernel.py): quiet_step's nine leading scalars, ``n_streams``,
#: ``slack``, and its array parameters' addresses and lengths (two int64 arrays, in the
#: order of :data:`STEP_ARRAYS`)
STEP_ARRAYS = tuple(p for p in STEP_PARAMS[9:] if not p.split(":")[1].islower())
STEP_AT_SIG = ("Tuple((i8, i8, i8, i8, i8, f8, i8, i8, i8))("
               "i8, i8, i8, i8, i8, i8, f8, i8, i8, i8, f8, i8[::1], i8[::1])")
STEP_AT_ARGS = (None,) * 11 + (("i8", 1),) * 2
_STEP_TAIL = [p.split(":")[0] for p in STEP_PARAMS[9:]]
_STEP_TAIL_ARRAYS = [j for j, p in enumerate(STEP_PARAMS[9:]) if not p.split(":")[1].islower()]


def step_addresses(tail: tuple) -> tuple:
    """``(n_streams, slack, addr, lens)`` of quiet_step_at from ``tail``, quiet_step's
    arguments after its nine leading scalars: each array's data address and length, in
    :data:`STEP_ARRAYS` order, each checked against its declared dtype (1-d, C order; a
    wrong one would be read as the declared type: TypeError here). The caller keeps
    ``tail`` (its arrays) alive while it calls with the addresses."""
    import numpy as np

    arrays = [tail[j] for j in _STEP_TAIL_ARRAYS]
    dram_aot.check_args(STEP_ARGS[9:], tuple(tail))
    addr = np.array([a.__array_interface__["data"][0] for a in arrays], dtype=np.int64)
    lens = np.array([len(a) for a in arrays], dtype=np.int64)
    return (tail[_STEP_TAIL.index("n_streams")], tail[_STEP_TAIL.index("slack")], addr, lens)

#: a stream's state for quiet_until: not started, busy until a time, waiting on an op
NOT_STARTED, BUSY, WAITING = 0, 1, 2
#: quiet_until(rc, busy0, busy1, now, users_ptr, users, use_ptr, use_pos, n_streams, cum_ptr,
#:             cum, stream_ops, dur, st_kind, st_t, st_op, wait_at, wait_on, done, owner,
#:             position, end, slack)
BOUND_SIG = (f"f8(i8, i8, i8, f8, {_I}, {_I}, {_I}, {_I}, i8, {_I}, {_F}, {_I}, {_F}, {_I}, "
             f"{_F}, {_I}, {_I}, {_I}, {_U}, {_I}, {_I}, {_F}, f8)")
BOUND_ARGS = ((None,) * 4 + (("i8", 1),) * 4 + (None, ("i8", 1), ("f8", 1), ("i8", 1),
                                               ("f8", 1), ("i8", 1), ("f8", 1))
              + (("i8", 1),) * 3 + (("u1", 1),) + (("i8", 1),) * 2 + (("f8", 1), None))

_Q = "u8[::1]"
#: point_groups(key, flops, nbytes, shards, by, time, table, first, count) -> groups (-1:
#: more than the capacity) and group_sums(ids, values, by, out), for 32- and 64-bit codes
GROUP_SIG = {w: f"i8({_Q}, {_Q}, {_Q}, {_I}, {w}[::1], {_Q}, {_I}, {_I}, {_I})"
             for w in ("i4", "i8")}
GROUP_ARGS = {w: (("u8", 1),) * 3 + (("i8", 1), (w, 1), ("u8", 1)) + (("i8", 1),) * 3
              for w in ("i4", "i8")}
SUMS_BY_SIG = {w: f"none({_I}, f8[:, ::1], {w}[::1], f8[:, ::1])" for w in ("i4", "i8")}
SUMS_BY_ARGS = {w: (("i8", 1), ("f8", 2), (w, 1), ("f8", 2)) for w in ("i4", "i8")}
#: gathered_pairwise(values, by, lo, n, leaf) -> numpy's sum of values[by[lo:lo + n]]
PAIRWISE_SIG = {w: f"f8({_F}, {w}[::1], i8, i8, i8)" for w in ("i4", "i8")}
PAIRWISE_ARGS = {w: (("f8", 1), (w, 1), None, None, None) for w in ("i4", "i8")}
#: compensated_sums(ids, values, sums, comp)
COMPENSATED_SIG = f"none({_I}, {_F}, {_F}, {_F})"
COMPENSATED_ARGS = (("i8", 1),) + (("f8", 1),) * 3
#: row_sums(ids, a, b, c, d, k, out, count)
ROW_SUMS_SIG = f"none({_I}, {_F}, {_F}, {_F}, {_F}, i8, f8[:, ::1], {_I})"
ROW_SUMS_ARGS = (("i8", 1),) + (("f8", 1),) * 4 + (None, ("f8", 2), ("i8", 1))
#: distinct_marked(values, mask, lo, seen), for 32- and 64-bit values
MARKED_SIG = {w: f"none({w}[::1], b1[::1], i8, b1[::1])" for w in ("i4", "i8")}
MARKED_ARGS = {w: ((w, 1), ("b1", 1), None, ("b1", 1)) for w in ("i4", "i8")}

#: handoff_pairs(stream, position, next_op, waiter, waited, wait_at, memory_code, stops,
#:               only_waiter, only_wait, adopt, beside)
HANDOFF_SIG = f"none({_I}, {_I}, {_I}, {_I}, {_I}, {_I}, {_I}, b1[::1], {_I}, {_I}, {_I}, {_I})"
HANDOFF_ARGS = (("i8", 1),) * 7 + (("b1", 1),) + (("i8", 1),) * 4

#: stream_keys(kind, layer, stage_at, send_k, cat_k, grouped_k, ported, width, stage, here,
#:             code, loaded, key_of_code, first_of_code) -> number of codes
_J = "i4[::1]"
KEYS_SIG = (f"i8({_J}, {_J}, {_J}, b1[::1], {_I}, b1[::1], b1[::1], i8, {_J}, {_J}, {_J}, "
            f"b1[::1], {_I}, {_I})")
KEYS_ARGS = (("i4", 1),) * 3 + (("b1", 1), ("i8", 1), ("b1", 1), ("b1", 1), None) + \
    (("i4", 1),) * 3 + (("b1", 1), ("i8", 1), ("i8", 1))

#: stream_sums(by_stream, bounds, dur, adopt_after, cum)
SUMS_SIG = f"none({_I}, {_I}, {_F}, {_I}, {_F})"
SUMS_ARGS = (("i8", 1), ("i8", 1), ("f8", 1), ("i8", 1), ("f8", 1))

#: cross_counts(dep_ptr, dep_idx, stream, signal, cand, wait_at) -> pairs, and
#: cross_pairs(dep_ptr, dep_idx, signal, waiter, waited, waiter_at, waited_sorted,
#:             waiter_by_waited), for dependency arrays of each width
COUNTS_SIG = {w: f"i8({w}[::1], {w}[::1], {_I}, b1[::1], b1[::1], {_I})" for w in ("i4", "i8")}
COUNTS_ARGS = {w: ((w, 1), (w, 1), ("i8", 1), ("b1", 1), ("b1", 1), ("i8", 1))
               for w in ("i4", "i8")}
PAIRS_SIG = {w: f"none({w}[::1], {w}[::1], b1[::1], {_I}, {_I}, {_I}, {_I}, {_I})"
             for w in ("i4", "i8")}
PAIRS_ARGS = {w: ((w, 1), (w, 1), ("b1", 1)) + (("i8", 1),) * 5 for w in ("i4", "i8")}
#: late_dependency(dep_ptr, dep_idx, start, end, slack) -> position (-1: none), for each width
LATE_SIG = {w: f"i8({w}[::1], {w}[::1], {_F}, {_F}, f8)" for w in ("i4", "i8")}
LATE_ARGS = {w: ((w, 1), (w, 1), ("f8", 1), ("f8", 1), None) for w in ("i4", "i8")}

#: quiet_lanes(stream, bounds, with_memory, stop_all, signal, cand, single,
#:             adopt_after, only_wait, next_op, stops, sig, wait, one, ends_run, waits_left,
#:             next_block, next_adoption, adopt_at, n_adopt)
_B = "b1[::1]"
LANE_SIG = (f"none({_J}, {_I}, {_B}, {_B}, {_B}, {_B}, {_B}, {_I}, {_I}, {_I}, {_B}, "
            f"{_B}, {_B}, {_B}, {_B}, {_B}, {_I}, {_I}, {_I}, {_I})")
LANE_ARGS = (("i4", 1), ("i8", 1)) + (("b1", 1),) * 5 + (("i8", 1),) * 3 + (("b1", 1),) * 6 + \
    (("i8", 1),) * 4

#: stream_layout(stream, bounds, by_stream, prev, after, position) for 32-bit stream codes
LAYOUT_SIG = f"none({_J}, {_I}, {_I}, {_I}, {_I}, {_I})"
LAYOUT_ARGS = (("i4", 1),) + (("i8", 1),) * 5
#: stream_positions(by_stream, bounds, position)
POSITIONS_SIG = f"none({_I}, {_I}, {_I})"
POSITIONS_ARGS = (("i8", 1),) * 3
#: gather_pairs(kind, stream, n_streams, size_tab, dur_tab, stop_tab, latency, size, dur,
#:              stop, lat) for 32-bit kind and stream codes
PAIRS_GATHER_SIG = (f"none({_J}, {_J}, i8, {_F}, {_F}, b1[::1], {_F}, {_F}, {_F}, b1[::1], "
                    f"{_F})")
PAIRS_GATHER_ARGS = (("i4", 1), ("i4", 1), None, ("f8", 1), ("f8", 1), ("b1", 1), ("f8", 1),
                     ("f8", 1), ("f8", 1), ("b1", 1), ("f8", 1))

#: used_labels(codes, used), for codes of each width
USED_SIG = {w: f"none({w}[::1], b1[::1])" for w in ("i1", "i4", "i8")}
USED_ARGS = {w: ((w, 1), ("b1", 1)) for w in ("i1", "i4", "i8")}

#: lut_key(key, card, codes, lut, out) for codes of each width; offset_key(key, card, values,
#: lo, out) for 32- and 64-bit values; first_groups(key, table, ids, first) -> groups, for
#: 32- and 64-bit keys
LUT_SIG = {w: f"none({_I}, i8, {w}[::1], {_I}, {_I})" for w in ("i1", "i4", "i8")}
LUT_ARGS = {w: (("i8", 1), None, (w, 1), ("i8", 1), ("i8", 1)) for w in ("i1", "i4", "i8")}
OFFSET_SIG = {w: f"none({_I}, i8, {w}[::1], i8, {_I})" for w in ("i4", "i8")}
OFFSET_ARGS = {w: (("i8", 1), None, (w, 1), None, ("i8", 1)) for w in ("i4", "i8")}
FIRST_SIG = {w: f"i8({w}[::1], {_I}, {_I}, {_I})" for w in ("i4", "i8")}
FIRST_ARGS = {w: ((w, 1),) + (("i8", 1),) * 3 for w in ("i4", "i8")}
#: take_rows(values, by, lo, out), for 32- and 64-bit codes
TAKE_SIG = {w: f"none(f8[:, ::1], {w}[::1], i8, f8[:, ::1])" for w in ("i4", "i8")}
TAKE_ARGS = {w: (("f8", 2), (w, 1), None, ("f8", 2)) for w in ("i4", "i8")}
#: take_codes(lut, by, lo, out): a text column's codes through its lookup table, for 8- and
#: 16-bit tables (the report's, :func:`sim.report.rollups._small`) and 32- / 64-bit codes
TAKE_CODES_SIG = {(t, w): f"none({t}[::1], {w}[::1], i8, {t}[::1])"
                  for t in ("i1", "i2") for w in ("i4", "i8")}
TAKE_CODES_ARGS = {(t, w): ((t, 1), (w, 1), None, (t, 1)) for t in ("i1", "i2")
                   for w in ("i4", "i8")}

#: adopted_run(ids, k, e, upto, adopt_at, adopt_after, lead, out) -> (length, lo, hi) and
#: adopted_taken(f, k, lo, hi, adopt_at, adopt_after, ids, flagged) -> (taken, last op)
RUN_SIG = f"Tuple((i8, i8, i8))({_I}, i8, i8, i8, {_I}, {_I}, i8, {_I})"
RUN_ARGS = (("i8", 1),) + (None,) * 3 + (("i8", 1),) * 2 + (None, ("i8", 1))
TAKEN_SIG = f"Tuple((i8, i8))(i8, i8, i8, i8, {_I}, {_I}, {_I}, {_U})"
TAKEN_ARGS = (None,) * 4 + (("i8", 1),) * 3 + (("u1", 1),)

#: stage_runs(ids, step, layer, phase, mb, mb_lo, kind, tokens, w_k, kv_k, c_k, n_comp,
#:            starts, last, run_tokens, w_sum, kv_sum, n_first, first_ids, seen_mb, seen_w,
#:            seen_kv) -> (runs, first ops); the trace's columns as the tracer makes them
#:            (int32; phases int8)
STAGE_RUNS_SIG = (f"Tuple((i8, i8))({_I}, {_J}, {_J}, i1[::1], {_J}, i8, {_J}, {_J}, {_F}, "
                  f"{_F}, {_I}, i8, {_I}, {_I}, {_I}, {_F}, {_F}, {_I}, {_I}, {_I}, {_I}, {_I})")
STAGE_RUNS_ARGS = ((("i8", 1),) + (("i4", 1),) * 2 + (("i1", 1), ("i4", 1), None)
                   + (("i4", 1),) * 2 + (("f8", 1),) * 2 + (("i8", 1), None)
                   + (("i8", 1),) * 3 + (("f8", 1),) * 2 + (("i8", 1),) * 5)

#: load_sums(code, ptr, res, nb, sums): each row's tuple of loads added to its resources
LOAD_SUMS_SIG = f"none({_I}, {_I}, {_I}, {_F}, {_F})"
LOAD_SUMS_ARGS = (("i8", 1),) * 3 + (("f8", 1),) * 2

#: stage_members(layer, kind, off_kind, hosted, stage_at, n_layers, ids, bounds, order) ->
#:               stages met (the trace's layer and kind columns: int32)
STAGE_MEMBERS_SIG = f"i8({_J}, {_J}, {_U}, {_U}, {_I}, i8, {_I}, {_I}, {_I})"
STAGE_MEMBERS_ARGS = (("i4", 1),) * 2 + (("u1", 1),) * 2 + (("i8", 1), None) + (("i8", 1),) * 3

#: task_deps(base_ptr, base, wait_op, wait_len, waited, tr_ptr, tr_waited, n, ptr, idx), for
#: 32- and 64-bit dependency ids (``base``)
TASK_DEPS_SIG = {w: f"none({_I}, {w}[::1], {_I}, {_I}, {_I}, {_I}, {_I}, i8, {_I}, {_I})"
                 for w in ("i4", "i8")}
TASK_DEPS_ARGS = {w: (("i8", 1), (w, 1)) + (("i8", 1),) * 5 + (None, ("i8", 1), ("i8", 1))
                  for w in ("i4", "i8")}
#: the same with a 32-bit table in and out (``base_ptr``, ``base``, ``ptr``, ``idx``: a trace's
#: own 32-bit arrays and no task id or entry past 2**31 - 1), ``task_deps_narrow``
TASK_DEPS_NARROW_SIG = (f"none(i4[::1], i4[::1], {_I}, {_I}, {_I}, {_I}, {_I}, i8, i4[::1], "
                        "i4[::1])")
TASK_DEPS_NARROW_ARGS = (("i4", 1),) * 2 + (("i8", 1),) * 5 + (None, ("i4", 1), ("i4", 1))

_W = ("i4", "i8")


def _per_width(symbol: str, function: str, sigs: dict, args: dict,
               widths: tuple[str, ...] = _W) -> tuple:
    """The :data:`ENTRIES` rows of one loop built for several integer widths:
    ``<symbol>_<width>`` each."""
    return tuple((f"{symbol}_{w}", function, sigs[w], args[w]) for w in widths)


#: the entry points: (symbol, the kernel's ``module:function``, signature, argument spec)
ENTRIES = (
    ("stamp_beside", "sim.beside_kernel:stamp_beside", BESIDE_SIG, BESIDE_ARGS),
    ("dag_times", "sim.dag_kernel:dag_times", DAG_SIG["i8"], DAG_ARGS["i8"]),
    ("dag_times_i4", "sim.dag_kernel:dag_times", DAG_SIG["i4"], DAG_ARGS["i4"]),
    ("scan_run", "sim.scan_kernel:scan_run", SCAN_SIG, SCAN_ARGS),
    ("stamp_span", "sim.span_kernel:stamp_span", SPAN_SIG, SPAN_ARGS),
    ("stamp_quiet", "sim.quiet_kernel:stamp_quiet", QUIET_SIG, QUIET_ARGS),
    ("stamp_bounded", "sim.quiet_kernel:stamp_bounded", BOUNDED_SIG, BOUNDED_ARGS),
    ("quiet_until", "sim.bound_kernel:quiet_until", BOUND_SIG, BOUND_ARGS),
    ("stream_sums", "sim.bound_kernel:stream_sums", SUMS_SIG, SUMS_ARGS),
    *_per_width("point_groups", "sim.group_kernel:point_groups", GROUP_SIG, GROUP_ARGS),
    ("handoff_pairs", "sim.handoff_kernel:handoff_pairs", HANDOFF_SIG, HANDOFF_ARGS),
    ("stream_keys", "sim.plan_kernel:stream_keys", KEYS_SIG, KEYS_ARGS),
    *_per_width("cross_counts", "sim.deps_kernel:cross_counts", COUNTS_SIG, COUNTS_ARGS),
    *_per_width("cross_pairs", "sim.deps_kernel:cross_pairs", PAIRS_SIG, PAIRS_ARGS),
    *_per_width("late_dependency", "sim.deps_kernel:late_dependency", LATE_SIG, LATE_ARGS),
    *_per_width("task_deps", "sim.deps_kernel:task_deps", TASK_DEPS_SIG, TASK_DEPS_ARGS),
    ("task_deps_narrow", "sim.deps_kernel:task_deps", TASK_DEPS_NARROW_SIG,
     TASK_DEPS_NARROW_ARGS),
    ("quiet_lanes", "sim.lane_kernel:quiet_lanes", LANE_SIG, LANE_ARGS),
    *_per_width("used_labels", "sim.group_kernel:used_labels", USED_SIG, USED_ARGS, ("i1", *_W)),
    *_per_width("lut_key", "sim.group_kernel:lut_key", LUT_SIG, LUT_ARGS, ("i1", *_W)),
    *_per_width("offset_key", "sim.group_kernel:offset_key", OFFSET_SIG, OFFSET_ARGS),
    ("first_groups", "sim.group_kernel:first_groups", FIRST_SIG["i8"], FIRST_ARGS["i8"]),
    ("first_groups_i4", "sim.group_kernel:first_groups", FIRST_SIG["i4"], FIRST_ARGS["i4"]),
    *_per_width("distinct_marked", "sim.group_kernel:distinct_marked", MARKED_SIG, MARKED_ARGS),
    *_per_width("group_sums", "sim.group_kernel:group_sums", SUMS_BY_SIG, SUMS_BY_ARGS),
    ("row_sums", "sim.group_kernel:row_sums", ROW_SUMS_SIG, ROW_SUMS_ARGS),
    ("compensated_sums", "sim.group_kernel:compensated_sums", COMPENSATED_SIG,
     COMPENSATED_ARGS),
    ("adopted_run", "sim.run_kernel:adopted_run", RUN_SIG, RUN_ARGS),
    ("adopted_taken", "sim.run_kernel:adopted_taken", TAKEN_SIG, TAKEN_ARGS),
    ("stream_layout", "sim.layout_kernel:stream_layout", LAYOUT_SIG, LAYOUT_ARGS),
    ("stream_positions", "sim.layout_kernel:stream_positions", POSITIONS_SIG, POSITIONS_ARGS),
    ("gather_pairs", "sim.pair_kernel:gather_pairs", PAIRS_GATHER_SIG, PAIRS_GATHER_ARGS),
    ("quiet_step", "sim.step_kernel:quiet_step", STEP_SIG, STEP_ARGS),
    ("quiet_step_at", "sim.step_kernel:quiet_step_at", STEP_AT_SIG, STEP_AT_ARGS),
    ("shared_times", "sim.shared_kernel:shared_times", SHARED_SIG, SHARED_ARGS),
    ("shared_times_i4", "sim.shared_kernel:shared_times", SHARED_SIG_I4, SHARED_ARGS_I4),
    ("replay_shared", "sim.replay_kernel:replay_shared", REPLAY_SIG, REPLAY_ARGS),
    ("replay_shared_i4", "sim.replay_kernel:replay_shared", REPLAY_SIG_I4, REPLAY_ARGS_I4),
    ("settled", "sim.replay_kernel:settled", SETTLED_SIG, SETTLED_ARGS),
    *_per_width("gathered_pairwise", "sim.sum_kernel:gathered_pairwise", PAIRWISE_SIG,
                PAIRWISE_ARGS),
    *_per_width("take_rows", "sim.take_kernel:take_rows", TAKE_SIG, TAKE_ARGS),
    *((f"take_codes_{t}_{w}", "sim.take_kernel:take_codes", TAKE_CODES_SIG[t, w],
       TAKE_CODES_ARGS[t, w]) for t, w in TAKE_CODES_SIG),
    ("stage_runs", "sim.runs_kernel:stage_runs", STAGE_RUNS_SIG, STAGE_RUNS_ARGS),
    ("stage_members", "sim.runs_kernel:stage_members", STAGE_MEMBERS_SIG, STAGE_MEMBERS_ARGS),
    ("load_sums", "sim.sum_kernel:load_sums", LOAD_SUMS_SIG, LOAD_SUMS_ARGS),
)

#: the loops a run calls (callables) and where they come from (``kind``: 'aot' or 'jit')
Kernels = namedtuple("Kernels", [sym for sym, *_ in ENTRIES] + ["kind"])

_CACHE: list[Kernels] = []

#: the build's API: :func:`sim.micro.dram_aot.extension_api` over this module's tables
kernels, jit_kernels, module_name, build = dram_aot.extension_api(
    globals(), "xpusim_engine_", "XPUSIM_ENGINE_AOT", "sim.beside_kernel", "the engine's loops")
