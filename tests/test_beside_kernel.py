"""The compiled loop of windows beside a run (sim/beside_kernel.py) against the Python loop.

Under ``--overlap`` with interleaved micro-batches each collective of one micro-batch runs
beside the other's compute ops, their HBM traffic shared. The compiled loop must stamp every
op, and count every byte and busy second of the memory, exactly as the Python loop does
(which tests/test_array_plan.py and tests/test_speed_equivalence.py hold to the per-op
engine): the same floats, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sim.beside_kernel as beside_kernel
import sim.engine_aot as engine_aot
import sim.engine_arrays as engine_arrays
from arch import load_arch
from sim.run import simulate
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.fixture(autouse=True)
def _simpy_event_loop(monkeypatch):
    """These tests exercise the SimPy event loop's machinery: the compiled pass that times
    contended runs without it (sim/engine_shared.py) is off."""
    monkeypatch.setattr(engine_arrays, "SHARED_RUNS", False)


CASES = {
    # 70B at TP8, two micro-batches: an all-reduce beside the other micro-batch's ops
    "70b-tp8-mb2": ("dgx-h100", "llama2-70b",
                    {"batch": 32, "prompt_len": 512, "gen_len": 6, "tp": 8,
                     "microbatches": 2}),
    # three micro-batches of uneven prompts on two GPUs
    "7b-tp2-mb3": ("dgx-h100", "llama2-7b",
                   {"batch": 12, "prompt_len": 300, "gen_len": 5, "tp": 2,
                    "microbatches": 3}),
}


def _run(case, compiled: bool, monkeypatch):
    arch, model, scenario = case
    monkeypatch.setattr(engine_arrays, "COMPILED_BESIDE", compiled)
    return simulate(load_arch(arch), get_model(model), Scenario(**scenario),
                    policies=Policies(overlap=True))


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_windows_equal_the_python_loop(name, monkeypatch):
    calls = []
    kernels = engine_aot.kernels()
    kernel = kernels.stamp_beside

    def counted(*args):
        out = kernel(*args)
        calls.append(out[2])
        return out

    monkeypatch.setattr(engine_aot, "kernels", lambda: kernels._replace(stamp_beside=counted))
    fast = _run(CASES[name], True, monkeypatch)
    assert calls and sum(calls) >= 100          # the compiled loop took the windows
    slow = _run(CASES[name], False, monkeypatch)
    for col in fast.ops.columns:
        a, b = fast.ops[col].to_numpy(), slow.ops[col].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b, err_msg=col)
    pd.testing.assert_frame_equal(fast.resources, slow.resources, check_exact=True)
    for key, value in slow.metrics.items():
        got = fast.metrics[key]
        assert got == value or (value != value and got != got), key


@pytest.mark.parametrize("build", ["aot", "jit"])
def test_a_window_by_hand(build):
    """A run of two ops and one op ``y`` beside it, on a memory of 100 B/s. The run's first
    op (1 s, no bytes) ends at 1 s; ``y`` (0.5 s, 100 B) starts there, beside the second op
    (1 s, 300 B), which arrives first. Shared at 50 B/s each, ``y`` is done at 3 s; the
    second op's last 200 B then move alone at 100 B/s: it ends at 5 s. The memory moved
    400 B, busy from 1 s to 5 s."""
    stamp_beside = engine_aot.kernels().stamp_beside if build == "aot" else \
        beside_kernel.stamp_beside
    run = np.array([0, 1], dtype=np.int64)
    lat = np.array([1.0, 1.0, 0.5])
    size = np.array([0.0, 300.0, 100.0])
    dur = np.array([1.0, 3.0, 1.0])
    stream = np.array([0, 0, 1], dtype=np.int64)
    start, end = np.full(3, np.nan), np.full(3, np.nan)
    y_end = np.empty(1)
    none = np.zeros(0, dtype=np.int64)
    j, t, taken, moved, busy, last = stamp_beside(
        run, np.array([1, 2], dtype=np.int64), np.array([1], dtype=np.int64),
        np.array([2], dtype=np.int64), none, np.zeros(1, dtype=np.int64), none, 0.0, lat,
        dur, size, stream, np.full(2, -np.inf), True, 100.0, np.inf, np.full(2, np.inf),
        0.0, 0.0, 0.0, start, end, y_end)
    assert (j, taken) == (2, 1)
    assert list(start) == [0.0, 1.0, 1.0] and list(end) == [1.0, 5.0, 3.0]
    assert t == 5.0 and y_end[0] == 3.0
    assert (moved, busy, last) == (400.0, 4.0, 5.0)
    # a memory that must stay quiet before 4 s: the window cannot end beside it
    start[:], end[:] = np.nan, np.nan
    j, *_ = stamp_beside(
        run, np.array([1, 2], dtype=np.int64), np.array([1], dtype=np.int64),
        np.array([2], dtype=np.int64), none, np.zeros(1, dtype=np.int64), none, 0.0, lat,
        dur, size, stream, np.full(2, -np.inf), True, 100.0, np.inf, np.array([4.0, 4.0]),
        0.0, 0.0, 0.0, start, end, y_end)
    assert j == 1 and np.isnan(end[1])
