"""The several-stream engine's compiled bound of a quiet run (sim/bound_kernel.py), by hand,
built ahead of time and as numba's JIT: the whole-run tests (test_array_plan.py) compare the
engine with the op-by-op one; these pin each rule."""

import math

import numpy as np
import pytest

import sim.engine_aot as engine_aot
from sim import bound_kernel
from sim.engine_aot import BUSY, NOT_STARTED, WAITING

I8 = np.int64
SLACK = 1e-9


def _bound(build, kind=BUSY, t=10.0, nxt=4, busy=(0, -1), waits=(), done=(), end=None,
           owner_kind=BUSY, owner_t=30.0, uses=(2, 4), owner_op=-1, dur8=0.0, waits_of=None):
    """Resource 0 is used by streams 0 and 1. Stream 1 holds ops 3-7 at positions 0-4, each
    1, 2, 3, 4 and 5 s alone; its ops at positions ``uses`` (ops 5 and 7) move bytes through
    the resource. Stream 1 is in state ``kind`` (busy until ``t``) with next op ``nxt``,
    which waits for ops ``waits`` (of stream 0 for ops 0-2, of stream 2 for op 8);
    ``done``: those signalled; stream 2 (op 8 alone, ``dur8`` s alone) is ``owner_kind``
    until ``owner_t``, its next op ``owner_op``; ``waits_of``: what other ops wait for.
    Stream 0 is busy until 0 s with nothing left. Now is 5 s."""
    quiet = bound_kernel.quiet_until if build == "jit" else engine_aot.kernels().quiet_until
    n, streams = 9, 3
    owner = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2], dtype=I8)
    position = np.array([0, 1, 2, 0, 1, 2, 3, 4, 0], dtype=I8)
    lists = {**(waits_of or {}), nxt: tuple(waits)} if nxt >= 0 else dict(waits_of or {})
    counts = [len(lists.get(i, ())) for i in range(n)]
    wait_at = np.concatenate(([0], np.cumsum(counts))).astype(I8)
    waits = [d for i in range(n) for d in lists.get(i, ())]
    flags = np.zeros(n, dtype=np.uint8)
    flags[list(done)] = 1
    ends = np.full(n, np.nan) if end is None else np.asarray(end, dtype=float)
    users_ptr, users = np.array([0, 2], dtype=I8), np.array([0, 1], dtype=I8)
    use_ptr = np.array([0, 0, len(uses), len(uses)], dtype=I8)   # (resource 0, stream 0..2)
    use_pos = np.array(uses, dtype=I8)
    cum_ptr = np.array([0, 4, 10], dtype=I8)           # stream 1's sums start at 4
    cum = np.array([0.0, 0, 0, 0, 0.0, 1.0, 3.0, 6.0, 10.0, 15.0, 0.0, dur8])
    st_kind = np.array([BUSY, kind, owner_kind], dtype=I8)
    st_t = np.array([0.0, t, owner_t])
    st_op = np.array([-1, nxt, owner_op], dtype=I8)
    stream_ops = np.arange(n, dtype=I8)                 # ops in stream order already
    dur = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, dur8])
    return quiet(0, busy[0], busy[1], 5.0, users_ptr, users, use_ptr, use_pos, streams,
                 cum_ptr, cum, stream_ops, dur, st_kind, st_t, st_op, wait_at,
                 np.array(waits, dtype=I8), flags, owner, position, ends, SLACK)


def _slack(at: float, gap: float, cum_q: float) -> float:
    return at + max(0.0, gap - SLACK * (1.0 + cum_q))


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_bound_by_hand(build):
    # busy until 10 s, next op 4 at position 1: its next use is position 2 (op 5), after
    # op 4's 2 s alone: 10 + (3 - 1) less the slack on the sum 3
    assert _bound(build) == _slack(10.0, 2.0, 3.0)
    # next op at a position that uses the resource: no gap
    assert _bound(build, nxt=5) == 10.0
    # next op 6 at position 3: op 7 at position 4 after op 6's 4 s alone
    assert _bound(build, nxt=6) == _slack(10.0, 4.0, 10.0)
    # past its last use (only position 2 uses it): nothing bounds the run
    assert _bound(build, nxt=6, uses=(2,)) == math.inf
    # the stream asking is itself the user, or the only other one is among ``busy``
    assert _bound(build, busy=(1, -1)) == math.inf
    assert _bound(build, busy=(0, 1)) == math.inf
    # nothing left to run; not started (may start at once: now)
    assert _bound(build, nxt=-1) == math.inf
    assert _bound(build, kind=NOT_STARTED) == 5.0
    # waiting on op 4: it may start now, and uses the resource after 2 s alone
    assert _bound(build, kind=WAITING) == _slack(5.0, 2.0, 3.0)
    # op 4 waits only for op 1 of the asking stream 0, unsignalled: it cannot start before
    # stream 0 signals it - no bound; signalled, the usual one
    assert _bound(build, waits=(1,)) == math.inf
    assert _bound(build, waits=(1,), done=(1,)) == _slack(10.0, 2.0, 3.0)
    # waits for op 8 of stream 2 too: not before op 8 ends - stamped at 40 s, or (not
    # stamped) when its stream's current op ends, 30 s; a waiting stream 2 gives now
    end = np.full(9, np.nan)
    end[8] = 40.0
    assert _bound(build, waits=(1, 8), end=end) == _slack(40.0, 2.0, 3.0)
    assert _bound(build, waits=(1, 8)) == _slack(30.0, 2.0, 3.0)
    assert _bound(build, waits=(1, 8), owner_kind=WAITING) == _slack(10.0, 2.0, 3.0)
    # a bound at or before now is now
    assert _bound(build, nxt=5, t=4.0) == 5.0


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_bound_follows_what_a_wait_waits_for(build):
    # op 4 waits for op 8 (7 s alone), not stamped. Stream 2 busy until 30 s with op 8 next:
    # op 8 ends no earlier than 30 + 7 s (an op's own duration: no running sum, no slack),
    # and op 5 starts 2 s after op 4 (37 + 2 s less the slack on stream 1's sum); the
    # one-level rule said 30 + 2 s
    op8 = (30.0 + 7.0)
    assert _bound(build, waits=(8,), owner_op=8, dur8=7.0) == _slack(op8, 2.0, 3.0)
    # stream 2 waits on op 8 itself, which waits for op 0 of stream 0: stamped to end at
    # 20 s, op 8 ends no earlier than 20 + 7 s; not stamped, stream 0 busy until 0 s with
    # nothing left: op 0 is run now on the per-op path, op 8 starts now at the earliest
    end = np.full(9, np.nan)
    end[0] = 20.0
    chained = dict(waits=(8,), owner_kind=WAITING, owner_op=8, dur8=7.0, waits_of={8: (0,)})
    assert _bound(build, end=end, **chained) == _slack((20.0 + 7.0), 2.0, 3.0)
    assert _bound(build, **chained) == _slack((5.0 + 7.0), 2.0, 3.0)
    # signalled, op 0 holds nothing back: op 8 may start now as well
    assert _bound(build, end=end, done=(0,), **chained) == \
        _slack((5.0 + 7.0), 2.0, 3.0)


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_bound_waits_for_what_the_using_op_waits_for(build):
    # op 4 waits for nothing, but op 5 (the next op using the resource) waits for op 8, which
    # stream 2 (busy until 30 s) runs next for 7 s: op 5 starts no earlier than op 8 ends,
    # later than op 4's 2 s after 10 s
    assert _bound(build, owner_op=8, dur8=7.0, waits_of={5: (8,)}) == (30.0 + 7.0)
    # op 8 stamped to end at 11 s: op 4's 2 s after 10 s decide
    end = np.full(9, np.nan)
    end[8] = 11.0
    assert _bound(build, owner_op=8, dur8=7.0, waits_of={5: (8,)}, end=end) == \
        _slack(10.0, 2.0, 3.0)


def test_running_sums_hold_the_collectives_taken_turns_with():
    # stream 0: ops 0, 2, 4 (1, 2 and 4 s alone); stream 1: ops 1, 3 (10 and 20 s). Op 1
    # waits for op 0 and op 2 for op 1 (they take turns: adopt_after[0] = 1), likewise op 3
    # between ops 2 and 4: stream 0's op 4 starts no earlier than 1 + 10 + 2 + 20 s after op
    # 0 starts; stream 1's sums are its own durations
    from sim.engine_arrays import _bound_tables

    by_stream = np.array([0, 2, 4, 1, 3], dtype=I8)
    bounds = np.array([0, 3, 5], dtype=I8)
    dur = np.array([1.0, 10.0, 2.0, 20.0, 4.0])
    adopt_after = np.array([1, -1, 3, -1, -1], dtype=I8)
    tables = _bound_tables(("s0", "s1"), {}, {}, by_stream, bounds, dur, adopt_after)
    cum_ptr, cum, stream_ops, durations = tables[5], tables[6], tables[7], tables[8]
    assert cum_ptr.tolist() == [0, 4]
    assert cum.tolist() == [0.0, 11.0, 33.0, 37.0, 0.0, 10.0, 30.0]
    assert stream_ops.tolist() == by_stream.tolist()
    assert durations.tolist() == dur.tolist()
    # no collective taken turns with (no contended memory): the durations alone
    plain = _bound_tables(("s0", "s1"), {}, {}, by_stream, bounds, dur, np.zeros(0, I8))
    assert plain[6].tolist() == [0.0, 1.0, 3.0, 7.0, 0.0, 10.0, 30.0]
