"""Issue 18 speed paths that must not change a figure: the op table formed per kind, counted
distinct labels, the row-mode stamper, OpKind.of and the collector held by ``simulate``."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

import workloads.tracer as tracer_mod
from arch import load_arch
from sim.columns import Columns, Text, text_codes
from sim.devices.base import SimError, device_for
from sim.engine import CostList, Engine
from sim.result import op_columns
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import OpKind
from workloads.tracer import trace_model


def test_op_table_per_kind_equals_per_op_bit_for_bit():
    """The one-stream run's table (costs indexed by the kind array itself: formed per kind)
    equals the generic per-op assembly (same costs, a copy of the index) column by column."""
    arch, model = load_arch("h100"), get_model("llama2-7b")
    trace = trace_model(model, Scenario(batch=2, prompt_len=64, gen_len=9), compact=True)
    tl = Engine({"device0": device_for(arch, "tile")}).run(trace)
    assert isinstance(tl.costs, CostList) and tl.costs.index is trace.compact.kind
    fast = op_columns(trace, tl)
    tl.costs = CostList(tl.costs.table, tl.costs.index.copy())   # the per-op path
    slow = op_columns(trace, tl)
    assert list(fast.order) == list(slow.order)
    for name in slow.order:
        a, b = fast[name], slow[name]
        assert a.dtype == b.dtype, name
        assert np.array_equal(a, b), name


@pytest.mark.parametrize("labels, codes, want_labels, want_codes", [
    (["b", "a", "c"], [2, 2, 0, 2], ["b", "c"], [1, 1, 0, 1]),   # a label that never occurs
    (["x", "y", "x"], [0, 2, 1, 1, 0], ["x", "y"], [0, 0, 1, 1, 0]),   # a label twice
    (["p", "q"], [1, 0, 1], ["p", "q"], [1, 0, 1]),   # each label once: the codes themselves
    (["only"], [0, 0, 0], ["only"], [0, 0, 0]),
    (["a"], [], [], []),
])
def test_text_codes_by_hand(labels, codes, want_labels, want_codes):
    """Distinct labels in the order of their first slot, a code per row into them; of a
    :class:`Columns` table computed once (the same arrays on a second call); a DataFrame's
    the same labels."""
    table = Columns({"stream": Text(labels, np.array(codes, dtype=np.int64), None)},
                    ("stream",), len(codes))
    got = text_codes(table, "stream")
    assert got[0] == want_labels and got[1].tolist() == want_codes
    assert text_codes(table, "stream")[1] is got[1]
    frame = pd.DataFrame({"stream": [labels[c] for c in codes]})
    assert sorted(text_codes(frame, "stream")[0]) == sorted(want_labels)


def test_opkind_of_equals_the_constructor():
    args = ("qk", "matmul", "attention", None, None, -1, 2, 12.0, 34.0)
    a, b = OpKind.of(*args), OpKind(*args)
    assert a == b and hash(a) == hash(b) and repr(a) == repr(b)
    with pytest.raises(AttributeError):   # still frozen
        a.name = "x"


def test_compact_trace_builds_no_op_object(monkeypatch):
    """Tracing with ``compact`` records rows, not ops: no :class:`Op` per stamped op."""
    made = []
    real = tracer_mod.Op

    def counting(*a, **k):
        made.append(1)
        return real(*a, **k)

    monkeypatch.setattr(tracer_mod, "Op", counting)
    trace = trace_model(get_model("llama2-7b"), Scenario(batch=2, prompt_len=64, gen_len=12),
                        compact=True)
    assert trace.is_compact and not made
    monkeypatch.setattr(tracer_mod, "Op", real)
    short = trace_model(get_model("llama2-7b"), Scenario(batch=2, prompt_len=64, gen_len=3),
                        compact=True)        # too short for arrays: the rows become ops
    full = trace_model(get_model("llama2-7b"), Scenario(batch=2, prompt_len=64, gen_len=3))
    assert short.ops == full.ops


def test_simulate_holds_the_collector_and_gives_it_back():
    arch, model = load_arch("h100"), get_model("llama2-7b")
    seen = []
    real = tracer_mod._trace_decoder

    def spy(*a, **k):
        seen.append(gc.isenabled())
        return real(*a, **k)

    tracer_mod._trace_decoder = spy
    try:
        assert gc.isenabled()
        simulate(arch, model, Scenario(batch=1, prompt_len=16, gen_len=2))
        assert seen == [False] and gc.isenabled()
        with pytest.raises(SimError):   # does not fit: an error inside the call
            simulate(arch, get_model("llama2-70b"), Scenario(batch=64, prompt_len=4096,
                                                             gen_len=2))
        assert gc.isenabled()
        gc.disable()
        simulate(arch, model, Scenario(batch=1, prompt_len=16, gen_len=2))
        assert not gc.isenabled()      # left as the caller had it
    finally:
        gc.enable()
        tracer_mod._trace_decoder = real
