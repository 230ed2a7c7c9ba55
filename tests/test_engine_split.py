"""A several-stream run whose contention ends early: the event loop for its first ops, one
longest path for the rest (sim/engine_split.py).

The split must give the event engine's times, op table and resource figures bit for bit,
and hand back to the event engine every run where a later transfer shares a resource.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_same_run

import sim.engine_arrays as engine_arrays
import sim.engine_split as engine_split
from arch import load_arch
from sim.run import simulate
from sim.system.schedule import Policies
from workloads.models import get_model
from workloads.scenario import Scenario

#: Llama-2-70B on four TP2 stages in four micro-batches: two stages' sends share a link in
#: the prefill (0.18 s), no two transfers meet after it; with ``--overlap`` the last stage's
#: logits all-gather shares HBM with the next micro-batch's first op in every step
PIPELINE = {"batch": 8, "prompt_len": 512, "gen_len": 16, "tp": 2, "pp": 4,
            "microbatches": 4}


@pytest.fixture(autouse=True)
def _simpy_event_loop(monkeypatch):
    """The split is what runs where the compiled pass that times contended runs without the
    SimPy loop (sim/engine_shared.py) gives up: that pass is off here."""
    monkeypatch.setattr(engine_arrays, "SHARED_RUNS", False)


def _run(overlap: bool = False, gen_len: int = 16):
    return simulate(load_arch("dgx-h100"), get_model("llama2-70b"),
                    Scenario(**{**PIPELINE, "gen_len": gen_len}),
                    policies=Policies(overlap=overlap))


def _spy(monkeypatch) -> list:
    """Record what each split_run call returned (None: handed back)."""
    got = []
    real = engine_arrays.split_run
    monkeypatch.setattr(engine_arrays, "split_run",
                        lambda *a: got.append(real(*a)) or got[-1])
    return got


def test_prefill_contention_then_a_longest_path(monkeypatch):
    got = _spy(monkeypatch)
    fast = _run()
    assert len(got) == 1 and got[0] is not None
    prefix = got[0][2]
    # the event loop ran the prefill and the first decode ops only: the prefix's ops are
    # under an eighth of the run's and its events are the run's
    assert len(prefix.start) < len(fast.ops) // 8
    assert fast.metrics["engine_events"] == prefix.engine_events > 0
    monkeypatch.setattr(engine_arrays, "SPLIT_RUNS", False)
    slow = _run()
    # without the split the event loop runs every step: 687 events to the prefix's 62
    assert slow.metrics["engine_events"] > 10 * fast.metrics["engine_events"]
    assert_same_run(fast, slow)


def test_contention_in_every_step_is_handed_back(monkeypatch):
    """Given up on at once: the first ops' last clash is in their last quarter, so neither
    the check of the ops after it nor the prefix's event loop runs. (64 tokens: the first
    1/32 of the ops hold the prefill and a decode step.)"""
    got, later = _spy(monkeypatch), []
    monkeypatch.setattr(engine_split, "_clash_after", lambda *a: later.append(a) or True)
    fast = _run(overlap=True, gen_len=64)
    assert got == [None] and not later
    monkeypatch.setattr(engine_arrays, "SPLIT_RUNS", False)
    assert_same_run(fast, _run(overlap=True, gen_len=64))


def test_a_cut_inside_the_contention_is_refused(monkeypatch):
    """A prefix that stops before the second op of the prefill's shared link: that op's
    transfer starts while the prefix's is in flight, so the check after the prefix must
    refuse the split (a longest path would time it alone), and the event loop runs it all."""
    clash = []
    real_last, real_head = engine_split._last_clash, engine_split._head
    monkeypatch.setattr(engine_split, "_last_clash",
                        lambda *a: clash.append(real_last(*a)) or clash[-1])

    def early_head(*a):
        head = real_head(*a)
        head[clash[-1]:] = False     # the clashing op and every op after it: not in the prefix
        return head

    monkeypatch.setattr(engine_split, "_head", early_head)
    got = _spy(monkeypatch)
    fast = _run()
    assert clash and clash[-1] > 0 and got == [None]
    monkeypatch.setattr(engine_arrays, "SPLIT_RUNS", False)
    assert_same_run(fast, _run())


@pytest.mark.parametrize("longest", [8, 20])
def test_a_long_prefix_is_not_tried(longest, monkeypatch):
    """Where the contention ends after over 1/LONGEST_PREFIX of the ops, the split is not
    tried (the event loop would run most of the run anyway): here the prefill, where the
    contention is, holds 1/16 of the ops (it and 15 decode steps of as many ops), so a
    bound of 1/20 refuses it and 1/8 takes it."""
    got = _spy(monkeypatch)
    monkeypatch.setattr(engine_split, "LONGEST_PREFIX", longest)
    res = _run()
    step = np.asarray(res.ops["step"])
    assert np.searchsorted(step, 1) * 16 == len(step)
    assert (got[0] is None) == (longest == 20)


def test_later_ops_that_share_a_resource_are_refused(monkeypatch):
    """With ``--overlap`` every decode step's logits all-gather shares the last stage's HBM
    with the next micro-batch's first op. With the cheap checks that give up before the
    prefix bypassed, the check after it must see those transfers share and refuse the
    split. (64 tokens: the first 1/32 of the ops hold the prefill and a decode step.)"""
    monkeypatch.setattr(engine_split, "_clash_after", lambda *a: False)
    monkeypatch.setattr(engine_split, "_persists", lambda *a: False)
    seen = []      # the check after the prefix: (resource, clashes, first start, last change)
    real = engine_split.clashes

    def spied(res, *a, first=False):
        got = real(res, *a, first=first)
        if first:
            seen.append((res.name, got[3], got[1][0], res._last))
        return got

    monkeypatch.setattr(engine_split, "clashes", spied)
    got = _spy(monkeypatch)
    fast = _run(overlap=True, gen_len=64)
    # refused by the later ops' own clash on the last stage's HBM; each resource checked
    # before it had its first later transfer after the prefix's last change on it
    assert got == [None] and seen[-1][0] == "gpu6.hbm" and len(seen[-1][1]) == 1
    assert len(seen) > 1 and all(not len(c) and s > last for _, c, s, last in seen[:-1])
    monkeypatch.setattr(engine_arrays, "SPLIT_RUNS", False)
    assert_same_run(fast, _run(overlap=True, gen_len=64))


def test_a_prefill_longer_than_the_first_ops_is_looked_past(monkeypatch):
    """Llama-3-8B, 2,048-token prompts on two TP2 stages in four micro-batches, 30 tokens:
    the prefill is 1/30 of the ops, longer than the first 1/32 the check times first, and
    its stages' sends share a link at its end. The split looks at the first 1/8 instead,
    finds the contention over by the first decode step, and gives the event loop's
    figures."""
    got = _spy(monkeypatch)

    def run():
        return simulate(load_arch("dgx-h100"), get_model("llama3-8b"),
                        Scenario(batch=32, prompt_len=2048, gen_len=30, tp=2, pp=2,
                                 microbatches=4))

    fast = run()
    step = np.asarray(fast.ops["step"])
    assert np.searchsorted(step, 1) * 30 == len(step)
    assert len(got) == 1 and got[0] is not None
    monkeypatch.setattr(engine_arrays, "SPLIT_RUNS", False)
    slow = run()
    assert slow.metrics["engine_events"] > 10 * fast.metrics["engine_events"]
    assert_same_run(fast, slow)
