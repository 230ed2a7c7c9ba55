"""The several-stream engine's compiled span and scan (sim/span_kernel.py,
sim/scan_kernel.py), by hand, built ahead of time and as numba's JIT: the whole-run tests
(test_array_plan.py) compare them with the op-by-op engine; these pin each rule."""

import math

import numpy as np
import pytest

import sim.engine_aot as engine_aot
from sim import scan_kernel, span_kernel

I8 = np.int64


def _kernel(build: str, name: str):
    if build == "jit":
        return {"stamp_span": span_kernel.stamp_span, "scan_run": scan_kernel.scan_run}[name]
    return getattr(engine_aot.kernels(), name)


def _span(build, bound, ok=1, try_loaded=True):
    """Ops 10-13 at positions 0-3, 1, 2, 3 and 4 s alone, from t0 = 5 s; position 1 loads
    link 0 (100 B/s) with 100 B: alone it takes 1 s, inside its op's 2 s."""
    stamp = _kernel(build, "stamp_span")
    start, end = np.full(14, np.nan), np.full(14, np.nan)
    counters = (np.array([7.0]), np.array([0.5]), np.array([2.0]))     # moved, busy, last
    got = stamp(0, 4, 5.0, np.array([1.0, 2.0, 3.0, 4.0]), np.arange(10, 14, dtype=I8),
                np.array([1], dtype=I8), np.array([0, 1], dtype=I8), np.array([1], dtype=I8),
                np.array([0], dtype=I8), np.array([100.0]), try_loaded,
                np.array([ok], dtype=np.uint8), np.array([100.0]), np.array([bound]),
                *counters, start, end, np.empty(5), np.empty(2))
    return got, start[10:], end[10:], [c[0] for c in counters]


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_span_by_hand(build):
    # the link's bound unknown: it asks for link 0 and stamps nothing
    got, start, _, counters = _span(build, math.nan)
    assert got == (0, 5.0, 0, 0, 0) and np.isnan(start).all() and counters == [7.0, 0.5, 2.0]
    # nothing else on the link before 100 s: all four stamped back to back, the load counted
    # from 6 s to its timer at 7 s
    got, start, end, counters = _span(build, 100.0)
    assert got == (4, 15.0, -1, 1, 1)
    assert start.tolist() == [5.0, 6.0, 8.0, 11.0] and end.tolist() == [6.0, 8.0, 11.0, 15.0]
    assert counters == [107.0, 1.5, 7.0]
    # another stream may start on the link at 8 s, where the loaded op ends: it is not alone
    got, start, end, counters = _span(build, 8.0)
    assert got == (1, 6.0, -1, 1, 0) and end[0] == 6.0 and np.isnan(start[1:]).all()
    assert counters == [7.0, 0.5, 2.0]
    # a transfer in flight on the link, or loaded ops not tried: the span ends before it
    for got, *_ in (_span(build, 100.0, ok=0), _span(build, 100.0, try_loaded=False)):
        assert got[:3] == (1, 6.0, -1)


def _scan(build, sleep_on_y=True, waited_done=True, cap=8):
    """A stream of ops 0-4 (positions 0-4); position 1 is waited on by op 7 of stream 1
    (ends the run unless op 7 runs beside: stream 1 sleeps on it); position 2 waits for op 6;
    position 3 stops the run."""
    scan = _kernel(build, "scan_run")
    n = 9
    blocked = np.array([1, 1, 2, 3, 5, 5], dtype=I8)
    stops = np.array([0, 0, 0, 1, 0], dtype=np.uint8)
    waits_left = np.array([0, 0, 1, 0, 0], dtype=np.uint8)
    ends_run = np.array([0, 1, 0, 0, 0], dtype=np.uint8)
    wait_at = np.zeros(n + 1, dtype=I8)
    wait_at[3:] = 1                       # op 2 waits for one op: wait_on[0]
    wait_on = np.array([6], dtype=I8)
    done = np.zeros(n, dtype=np.uint8)
    done[6] = waited_done
    beside = np.full(n, -1, dtype=I8)
    beside[1] = 7
    next_op = np.full(n, -1, dtype=I8)
    next_op[7] = 8
    stream = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1], dtype=I8)
    sleep_on = np.array([-1, 7 if sleep_on_y else 5], dtype=I8)
    moved = np.full(2, engine_aot.NOT_MOVED, dtype=I8)
    out_pos, out_y = np.empty(4, dtype=I8), np.empty(4, dtype=I8)
    e, adopts, count = scan(0, 5, 5, 5, blocked, stops, waits_left, ends_run,
                            np.arange(5, dtype=I8), wait_at, wait_on, done, beside, cap,
                            next_op, stream, sleep_on, moved, out_pos, out_y)
    assert moved.tolist() == [engine_aot.NOT_MOVED] * 2        # scratch left as it was
    return e, bool(adopts), list(zip(out_pos[:count].tolist(), out_y[:count].tolist(),
                                     strict=True))


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_scan_by_hand(build):
    # op 7 runs beside position 1; position 2's wait was signalled; position 3 stops it
    assert _scan(build) == (2, True, [(1, 7)])
    # stream 1 does not sleep on op 7: the run ends at position 1 (its op signals op 7)
    assert _scan(build, sleep_on_y=False) == (1, False, [])
    # position 2 still waits for op 6: the run ends before it
    assert _scan(build, waited_done=False) == (1, True, [(1, 7)])
    # no room for an op beside: the run ends at position 1
    assert _scan(build, cap=0) == (1, False, [])
