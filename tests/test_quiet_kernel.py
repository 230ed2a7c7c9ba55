"""The several-stream engine's compiled quiet run (sim/quiet_kernel.py), by hand, built
ahead of time and as numba's JIT: the whole-run tests (test_array_plan.py) compare it with
the op-by-op engine; these pin each rule."""

import math

import numpy as np
import pytest

import sim.engine_aot as engine_aot
from sim import quiet_kernel
from sim.engine_aot import UNKNOWN, WANT_MEMORY

I8 = np.int64


def _stamp(build, mem_bound=100.0, mem_ok=1.0, link_ok=1, link_bound=100.0):
    """Ops 10-13 run back to back from t0 = 5 s, 1, 2, 3 and 4 s alone. Op 11 moves 200 B
    through the memory (100 B/s: 2 s alone, its whole op); op 12 loads link 0 (100 B/s) with
    100 B: 1 s, inside its 3 s. Memory counters start at 7 B, 0.5 s, last 2 s; the link's
    at 3 B, 0.25 s, last 1 s."""
    stamp = quiet_kernel.stamp_quiet if build == "jit" else engine_aot.kernels().stamp_quiet
    n = 14
    dur, size = np.zeros(n), np.zeros(n)
    dur[10:] = [1.0, 2.0, 3.0, 4.0]
    size[11] = 200.0
    of_op = np.full(n, -1, dtype=I8)
    of_op[12] = 0
    memory = np.array([mem_ok, 100.0, mem_bound, 7.0, 0.5, 2.0])
    links = (np.array([link_ok], dtype=np.uint8), np.array([100.0]), np.array([link_bound]),
             np.array([3.0]), np.array([0.25]), np.array([1.0]))
    start, end = np.full(n, np.nan), np.full(n, np.nan)
    got = stamp(np.arange(10, 14, dtype=I8), 5.0, dur, size, of_op, np.array([0, 1], dtype=I8),
                np.array([0], dtype=I8), np.array([100.0]), memory, *links, start, end,
                np.empty(5))
    return got, start[10:], end[10:], memory[3:].tolist(), [x[0] for x in links[3:]]


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_quiet_run_by_hand(build):
    untouched = ([7.0, 0.5, 2.0], [3.0, 0.25, 1.0])
    # the memory's bound not known: it asks for it and stamps nothing; then the link's state,
    # then (its state known, nothing in flight) the link's bound
    for kw, want in (({"mem_bound": math.nan}, WANT_MEMORY), ({"link_ok": UNKNOWN}, 0),
                     ({"link_bound": math.nan}, 0)):
        got, start, _, mem, link = _stamp(build, **kw)
        assert got == (0, 5.0, want) and np.isnan(start).all() and (mem, link) == untouched
    # nothing else on either before 100 s: all four back to back; the memory's transfer
    # counted from 6 s to its timer at 8 s, the link's from 8 s to 9 s
    got, start, end, mem, link = _stamp(build)
    assert got == (4, 15.0, -1)
    assert start.tolist() == [5.0, 6.0, 8.0, 11.0] and end.tolist() == [6.0, 8.0, 11.0, 15.0]
    assert mem == [207.0, 2.5, 8.0] and link == [103.0, 1.25, 9.0]
    # another stream may start on the memory at 7 s, before op 11 ends at 8 s (or something
    # is in flight there): the run ends before op 11, nothing counted
    for kw in ({"mem_bound": 7.0}, {"mem_ok": 0.0}):
        got, start, end, mem, link = _stamp(build, **kw)
        assert got == (1, 6.0, -1) and end[0] == 6.0 and np.isnan(start[1:]).all()
        assert (mem, link) == untouched
    # the link: another user at 10 s, before op 12 ends at 11 s (or a transfer in flight):
    # ops 10 and 11 stamped, the memory counted, the link not
    for kw in ({"link_bound": 10.0}, {"link_ok": 0, "link_bound": math.nan}):
        got, start, end, mem, link = _stamp(build, **kw)
        assert got == (2, 8.0, -1) and end[:2].tolist() == [6.0, 8.0]
        assert np.isnan(start[2:]).all()
        assert mem == [207.0, 2.5, 8.0] and link == untouched[1]
    # a bound equal to the op's end is not before it: the run ends there too
    assert _stamp(build, link_bound=11.0)[0] == (2, 8.0, -1)
    assert _stamp(build, mem_bound=8.0)[0] == (1, 6.0, -1)
