"""A quiet run's ops with the ops it adopts (sim/run_kernel.py), by hand and against the numpy
steps it replaces (``np.insert`` of each adopted op after its adopting position, a count of
those inside the stamped prefix), built ahead of time and as numba's JIT."""

import numpy as np
import pytest

import sim.engine_aot as engine_aot
from sim import run_kernel

I8 = np.int64


def _kernels(build: str):
    if build == "jit":
        return run_kernel.adopted_run, run_kernel.adopted_taken
    k = engine_aot.kernels()
    return k.adopted_run, k.adopted_taken


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_run_by_hand(build):
    """Stream ops 10..15 at positions 0..5; positions 1, 3 and 4 adopt ops 21, 23, 24. A run
    of positions 1..4 taking adoptions up to position 3: 11 21 12 13 23 14, after lead 7."""
    run, taken = _kernels(build)
    ids = np.arange(10, 16, dtype=I8)
    adopt_after = np.full(30, -1, dtype=I8)
    adopt_after[[11, 13, 14]] = [21, 23, 24]
    adopt_at = np.array([1, 3, 4], dtype=I8)
    out = np.zeros(16, dtype=I8)
    n, lo, hi = run(ids, 1, 4, 3, adopt_at, adopt_after, 7, out)
    assert out[:n].tolist() == [7, 11, 21, 12, 13, 23, 14] and (lo, hi) == (0, 2)
    n, lo, hi = run(ids, 2, 2, 1, adopt_at, adopt_after, -1, out)     # none adopted
    assert out[:n].tolist() == [12] and lo == hi
    # the first 4 entries stamped (lead not counted): 11 21 12 13 -> position 1's adoption
    flagged = np.zeros(30, dtype=np.uint8)
    assert taken(4, 1, 0, 2, adopt_at, adopt_after, ids, flagged) == (1, 21)
    assert np.flatnonzero(flagged).tolist() == [11, 21]
    flagged[:] = 0                     # 23 is the fifth entry: taken with five
    assert taken(5, 1, 0, 2, adopt_at, adopt_after, ids, flagged) == (2, 23)
    assert np.flatnonzero(flagged).tolist() == [11, 13, 21, 23]
    assert taken(2, 1, 0, 2, adopt_at, adopt_after, ids, flagged) == (1, 21)
    assert taken(1, 1, 0, 2, adopt_at, adopt_after, ids, flagged) == (0, -1)


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_run_against_numpy_insert(build):
    run, taken = _kernels(build)
    rng = np.random.default_rng(3)
    out = np.zeros(200, dtype=I8)
    for _ in range(300):
        m = int(rng.integers(1, 40))
        ids = rng.permutation(500)[:m].astype(I8)
        adopt_after = np.full(1000, -1, dtype=I8)
        adopting = np.sort(rng.choice(m, size=int(rng.integers(0, m + 1)), replace=False))
        adopt_after[ids[adopting]] = 500 + rng.permutation(400)[:len(adopting)]
        adopt_at = adopting.astype(I8)
        k = int(rng.integers(0, m))
        e = int(rng.integers(k, m))
        upto = e - int(rng.integers(0, 2))
        lead = int(rng.integers(900, 999)) if rng.random() < 0.3 else -1
        inside = adopt_at[(adopt_at >= k) & (adopt_at <= upto)]
        want = np.insert(ids[k:e + 1], inside - k + 1, adopt_after[ids[inside]])
        if lead >= 0:
            want = np.concatenate(([lead], want))
        n, lo, hi = run(ids, k, e, upto, adopt_at, adopt_after, lead, out)
        assert out[:n].tolist() == want.tolist()
        assert adopt_at[lo:hi].tolist() == inside.tolist()
        f = int(rng.integers(0, n + 1))
        at = inside - k + 1
        want_took = int(np.count_nonzero(at + np.arange(len(at)) < f))
        flagged = np.zeros(1000, dtype=np.uint8)
        took, y = taken(f, k, lo, hi, adopt_at, adopt_after, ids, flagged)
        assert took == want_took
        xs = ids[inside[:took]]
        assert np.flatnonzero(flagged).tolist() == sorted([*xs, *adopt_after[xs]])
        assert y == (adopt_after[xs[-1]] if took else -1)
