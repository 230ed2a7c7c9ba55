"""A several-stream run without contention, timed as one longest path (sim/engine_dag.py).

The pass must give the event engine's times and resource figures bit for bit
(tests/test_array_plan.py compares it with the op-by-op plan and engine), and must hand
every run in which two transfers share a resource back to the event engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import simpy

import sim.engine_arrays as engine_arrays
import sim.engine_dag as engine_dag
from arch import load_arch
from sim.dag_kernel import dag_times
from sim.engine_aot import kernels
from sim.engine_dag import NO_FLOOR, _alone, longest_path
from sim.resources import SharedBandwidth
from sim.run import simulate
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario

CASES = {
    # Mixtral's experts on four GPUs, collectives on their own streams: every comm op
    # waits for the compute before it, and the compute for it (no two transfers at once)
    "moe-ep4-overlap": ("dgx-h100", "mixtral-8x7b",
                        {"batch": 8, "prompt_len": 32, "gen_len": 5, "tp": 4, "ep": 4},
                        True, True),
    # two micro-batches: each all-reduce shares HBM with the other's compute ops
    "tp8-mb2-overlap": ("dgx-h100", "llama2-70b",
                        {"batch": 8, "prompt_len": 32, "gen_len": 8, "tp": 8,
                         "microbatches": 2}, True, False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_longest_path_only_without_contention(name, monkeypatch):
    arch, model, scenario, overlap, free = CASES[name]
    # the SimPy loop where the longest path does not hold (not the compiled pass that
    # replays sharing, sim/engine_shared.py)
    monkeypatch.setattr(engine_arrays, "SHARED_RUNS", False)
    paths, first = [], []
    real = engine_arrays.contention_free
    monkeypatch.setattr(engine_arrays, "contention_free",
                        lambda *a: paths.append(real(*a)) or paths[-1])
    real_first = engine_dag._first_ops_contend
    monkeypatch.setattr(engine_dag, "_first_ops_contend",
                        lambda *a: first.append(real_first(*a)) or first[-1])

    def run():
        return simulate(load_arch(arch), get_model(model), Scenario(**scenario),
                        policies=Policies(overlap=overlap))

    fast = run()
    assert len(paths) == 1 and (paths[0] is not None) == free
    # the first 1/32 of the ops: a free run passes, the micro-batches' shared HBM is seen
    # there already (the whole check never runs)
    assert first == [not free]
    monkeypatch.setattr(engine_arrays, "CONTENTION_FREE", False)
    slow = run()
    for col in fast.ops.columns:
        assert fast.ops[col].equals(slow.ops[col]), col
    pd.testing.assert_frame_equal(fast.resources, slow.resources, check_exact=True)
    assert (fast.metrics["engine_events"] == 0) == free


@pytest.mark.parametrize("build", ["aot", "jit", "aot-i4", "longest_path"])
def test_longest_path_by_hand(build):
    """Two streams: a (0, 1 s), then b (1 s) on stream 0; c (0.5 s) on stream 1 waits for a,
    d (2 s) on stream 1 waits for b and c. a 0-1, b 1-2, c 1-1.5, d 2-4. With 64-bit
    dependency arrays, and 32-bit ones (a trace's own) by the kernel built for them and
    through :func:`longest_path`, which picks it."""
    width = np.int32 if build in ("aot-i4", "longest_path") else np.int64
    kernel = {"aot": kernels().dag_times, "jit": dag_times, "aot-i4": kernels().dag_times_i4,
              "longest_path": None}[build]

    def times(first, fixed, ptr, idx, prev, dur, start, end, floor=NO_FLOOR):
        if kernel is None:
            return longest_path(first, fixed, ptr, idx, prev, dur, start, end, floor)
        return kernel(first, fixed, ptr, idx, prev, dur, floor, start, end)
    ptr = np.array([0, 0, 0, 1, 3], dtype=width)
    idx = np.array([0, 1, 2], dtype=width)
    prev = np.array([-1, 0, -1, 2], dtype=np.int64)
    dur = np.array([1.0, 1.0, 0.5, 2.0])
    start, end = np.empty(4), np.empty(4)
    none = np.zeros(0, dtype=np.uint8)
    assert times(0, none, ptr, idx, prev, dur, start, end)
    assert list(start) == [0.0, 1.0, 1.0, 2.0] and list(end) == [1.0, 2.0, 1.5, 4.0]
    # from op 2 on, a and b kept where they are (b ending at 3 s): c 1-1.5, d 3-5
    end[1] = 3.0
    assert times(2, none, ptr, idx, prev, dur, start, end)
    assert list(start) == [0.0, 1.0, 1.0, 3.0] and list(end) == [1.0, 3.0, 1.5, 5.0]
    # and with c kept too (ending at 3.5 s): d 3.5-5.5
    end[2] = 3.5
    assert times(1, np.array([0, 1, 1], dtype=np.uint8), ptr, idx, prev, dur, start, end)
    assert list(start) == [0.0, 1.0, 1.0, 3.5] and list(end) == [1.0, 3.0, 3.5, 5.5]
    # a dependency that comes later in id order: not a longest path in one pass
    assert not times(0, none, ptr, np.array([0, 3, 2], dtype=width), prev, dur, start, end)
    # floors (where an op's shared transfers finish): c's 2.5 s past its 1.5 s end, b's
    # 1.5 s below its 2 s: a 0-1, b 1-2, c 1-2.5, d 2.5-4.5
    assert times(0, none, ptr, idx, prev, dur, start, end,
                 np.array([-np.inf, 1.5, 2.5, -np.inf]))
    assert list(start) == [0.0, 1.0, 1.0, 2.5] and list(end) == [1.0, 2.0, 2.5, 4.5]


def _memory(bandwidth: float = 100.0) -> SharedBandwidth:
    return SharedBandwidth(simpy.Environment(), bandwidth, "hbm")


def _counted(ids, nbytes, start, end, prev, ptr, idx):
    """(bytes moved, busy time, last change) of a fresh 100 B/s memory that counted the
    transfers :func:`_alone` accepts; None where it refuses them."""
    mem = _memory()
    got = _alone(mem, ids, nbytes, start, end, prev, ptr, idx)
    if got is None:
        return None
    mem.add_solos(*got, np.ones(len(ids), dtype=bool))
    return mem.bytes_moved, mem.busy_time, mem._last


def test_transfers_alone_or_handed_on():
    """Ops 0 and 1 move 100 B each through 100 B/s (1 s alone). Op 1 starting after op 0's
    timer: alone. Starting the instant op 0 ends: alone only if it waits for op 0 (the
    event engine starts it after op 0's transfer is gone), else None. Starting before
    op 0's transfer is done, or with it: None (they would share)."""
    ids, nbytes = np.array([0, 1]), np.array([100.0, 100.0])
    prev = np.array([-1, -1])
    no_deps = (np.zeros(3, dtype=np.int64), np.zeros(0, dtype=np.int64))
    end = np.array([1.0, 9.0])
    got = _counted(ids, nbytes, np.array([0.0, 1.5]), end, prev, *no_deps)
    assert got == (200.0, 2.0, 2.5)        # bytes, busy 1 s + 1 s, last timer 2.5 s
    at_end = np.array([0.0, 1.0])
    assert _counted(ids, nbytes, at_end, end, prev, *no_deps) is None
    waits = (np.array([0, 0, 1], dtype=np.int64), np.array([0], dtype=np.int64))
    assert _counted(ids, nbytes, at_end, end, prev, *waits) == (200.0, 2.0, 2.0)
    assert _counted(ids, nbytes, at_end, end, np.array([-1, 0]), *no_deps) \
        == (200.0, 2.0, 2.0)              # the next op on op 0's stream
    assert _counted(ids, nbytes, np.array([0.0, 0.5]), end, prev, *waits) is None
    assert _counted(ids, nbytes, np.array([0.0, 0.0]), end, prev, *waits) is None
