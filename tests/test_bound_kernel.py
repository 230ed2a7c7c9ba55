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
           owner_kind=BUSY, owner_t=30.0, uses=(2, 4)):
    """Resource 0 is used by streams 0 and 1. Stream 1 holds ops 3-7 at positions 0-4, each
    1, 2, 3, 4 and 5 s alone; its ops at positions ``uses`` (ops 5 and 7) move bytes through
    the resource. Stream 1 is in state ``kind`` (busy until ``t``) with next op ``nxt``,
    which waits for ops ``waits`` (of stream 0 for ops 0-2, of stream 2 for op 8);
    ``done``: those signalled; stream 2 is ``owner_kind`` until ``owner_t``. Now is 5 s."""
    quiet = bound_kernel.quiet_until if build == "jit" else engine_aot.kernels().quiet_until
    n, streams = 9, 3
    owner = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2], dtype=I8)
    position = np.array([0, 1, 2, 0, 1, 2, 3, 4, 0], dtype=I8)
    wait_at = np.zeros(n + 1, dtype=I8)
    wait_at[nxt + 1:] = len(waits)
    flags = np.zeros(n, dtype=np.uint8)
    flags[list(done)] = 1
    ends = np.full(n, np.nan) if end is None else np.asarray(end, dtype=float)
    users_ptr, users = np.array([0, 2], dtype=I8), np.array([0, 1], dtype=I8)
    use_ptr = np.array([0, 0, len(uses), len(uses)], dtype=I8)   # (resource 0, stream 0..2)
    use_pos = np.array(uses, dtype=I8)
    cum_ptr = np.array([0, 4, 10], dtype=I8)           # stream 1's sums start at 4
    cum = np.array([0.0, 0, 0, 0, 0.0, 1.0, 3.0, 6.0, 10.0, 15.0, 0.0, 0.0])
    st_kind = np.array([BUSY, kind, owner_kind], dtype=I8)
    st_t = np.array([0.0, t, owner_t])
    st_op = np.array([-1, nxt, -1], dtype=I8)
    return quiet(0, busy[0], busy[1], 5.0, users_ptr, users, use_ptr, use_pos, streams,
                 cum_ptr, cum, st_kind, st_t, st_op, wait_at, np.array(waits, dtype=I8),
                 flags, owner, position, ends, SLACK)


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
