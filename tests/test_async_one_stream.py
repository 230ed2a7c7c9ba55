"""Async host stacks on the engine's one-stream path (sim/engine.py ``_run_one_stream``,
sim/gpu/host.py ``async_ends``): every op's start and end equal the per-op event run's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arch.software import load_arch_with_software
from sim.devices.base import device_for
from sim.engine import Engine
from sim.gpu.host import AsyncReplay, async_ends, async_makespan
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model

ROOT = Path(__file__).resolve().parents[1]
GPTSESSION = str(ROOT / "validation" / "trtllm" / "gptsession-v0.9.yaml")


def _loop_ends(lat, disp, new, cost) -> list[float]:
    """The host/GPU recurrence op by op (async_makespan's loop, keeping every end)."""
    cpu = gpu = 0.0
    ends = []
    for i in range(len(lat)):
        if i == 0:
            cpu = cost[0]
        elif new[i]:
            cpu = max(cpu, gpu) + cost[i]
        cpu += disp[i]
        gpu = max(gpu, cpu) + lat[i]
        ends.append(gpu)
    return ends


def test_async_ends_by_hand():
    # pass 0 opens with 1 s of host work; op 0 is issued at 1 + 2 = 3 and ends at 4; op 1 is
    # issued at 3.5 but waits for the GPU (ends 5); op 2 opens pass 1: the host waits for the
    # GPU (5), spends 1, dispatches 0.5 -> the GPU idles until 6.5 and ends at 7.5
    ends = async_ends([1.0, 1.0, 1.0], [2.0, 0.5, 0.5], [True, False, True], [1.0, 0.0, 1.0])
    assert ends.tolist() == [4.0, 5.0, 7.5]
    # host always ahead: plain back-to-back sums
    assert async_ends([1.0, 2.0], [0.0, 0.0], [True, False], [0.0, 0.0]).tolist() == [1.0, 3.0]
    assert async_ends([], [], [], []).size == 0


def test_async_ends_equals_the_loop_on_random_traces():
    rng = np.random.default_rng(7)
    for _ in range(100):
        n = int(rng.integers(1, 200))
        lat = rng.exponential(1e-5, n) * rng.choice([0.01, 1.0, 10.0], n)
        disp = rng.exponential(1e-5, n)
        new = rng.random(n) < rng.choice([0.02, 0.2, 0.7])
        cost = rng.exponential(1e-3, n) * rng.choice([0.0, 1.0])
        ends = async_ends(lat, disp, new, cost)
        np.testing.assert_allclose(ends, _loop_ends(lat, disp, new, cost), rtol=1e-12, atol=0)
        assert ends[-1] == pytest.approx(async_makespan(list(lat), list(disp),
                                                        list(new | (np.arange(n) == 0)),
                                                        list(cost)), rel=1e-12)


def test_one_replay_under_many_host_costs_is_each_costs_own_run():
    """An AsyncReplay formed once and replayed under several host costs (a fit's grid) gives
    each the loop's ends (by hand for the first trace of test_async_ends_by_hand: 1 s of
    dispatch on op 0 instead of 2 ends it at 3), and async_ends' floats, whatever ran before."""
    replay = AsyncReplay([1.0, 1.0, 1.0], [True, False, True])
    assert replay.ends([2.0, 0.5, 0.5], [1.0, 0.0, 1.0]).tolist() == [4.0, 5.0, 7.5]
    assert replay.ends([1.0, 0.5, 0.5], [1.0, 0.0, 1.0]).tolist() == [3.0, 4.0, 6.5]
    assert replay.ends([2.0, 0.5, 0.5], [1.0, 0.0, 1.0]).tolist() == [4.0, 5.0, 7.5]
    assert AsyncReplay([], []).ends([], []).size == 0
    assert replay.last_end([2.0, 0.5, 0.5], [1.0, 0.0, 1.0]) == 7.5
    # the last end alone, on random traces whose host falls behind in some passes: the float
    # of the whole replay's last end, bit for bit
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        lat = rng.exponential(1e-5, n) * rng.choice([0.01, 1.0, 10.0], n)
        new = rng.random(n) < rng.choice([0.02, 0.2, 0.7])
        disp = rng.exponential(1e-5, n) * rng.choice([0.0, 1.0, 30.0])
        cost = rng.exponential(1e-3, n) * rng.choice([0.0, 1.0])
        r = AsyncReplay(lat, new)
        assert r.last_end(disp, cost) == r.ends(disp, cost)[-1]
    rng = np.random.default_rng(11)
    n = 300
    lat = rng.exponential(1e-5, n)
    new = rng.random(n) < 0.1
    replay = AsyncReplay(lat, new)
    for d in (0.0, 3e-6, 2e-5, 3e-6):
        disp, cost = np.full(n, d), np.full(n, 1e-4)
        ends = replay.ends(disp, cost)
        assert np.array_equal(ends, async_ends(lat, disp, new, cost))
        assert replay.last_end(disp, cost) == ends[-1]
        np.testing.assert_allclose(ends, _loop_ends(lat, disp, new, cost), rtol=1e-12, atol=0)


CASES = [("h100", "vllm", 1), ("h100", "vllm", 8), ("a100", "eager", 1), ("a100", "eager", 8),
         ("h100", "trtllm", 8), ("a100", GPTSESSION, 1), ("h100", GPTSESSION, 8)]


@pytest.mark.parametrize("arch,stack,batch", CASES)
def test_one_stream_path_equals_the_event_run(arch, stack, batch):
    a = load_arch_with_software(arch, stack)
    sc = Scenario(batch=batch, prompt_len=96, gen_len=7, attention="flash")
    trace = trace_model(get_model("llama2-7b"), sc, compact=True)
    assert trace.is_compact
    fast = Engine({"device0": device_for(a, "tile")}).run(trace)
    slow = Engine({"device0": device_for(a, "tile")}, coarsen=False).run(trace)
    assert fast.engine_events == 1          # the one-stream path ran
    assert slow.engine_events == len(trace.ops)
    np.testing.assert_allclose(fast.end, slow.end, rtol=1e-12, atol=0)
    np.testing.assert_allclose(fast.start, slow.start, rtol=1e-12, atol=0)
    assert [c.latency for c in fast.costs] == [c.latency for c in slow.costs]
    sw = a.sections["software"]
    if sw.mode == "async":
        # the host is on the critical path somewhere: the run is longer than the GPU's work
        gpu = float(np.sum([c.latency for c in fast.costs]))
        assert fast.end[-1] > gpu + sw.per_step * sc.gen_len


def test_async_one_stream_waits_for_the_host_per_pass():
    # a host far slower than the GPU: every op ends one dispatch after the previous one's
    # issue, every pass opens with per_step + per_request x batch after the GPU is done
    a = load_arch_with_software("h100", "vllm")
    dev = device_for(a, "tile")
    sw = a.sections["software"]
    sc = Scenario(batch=2, prompt_len=16, gen_len=6, attention="flash")
    trace = trace_model(get_model("llama2-7b"), sc, compact=True)
    tl = Engine({"device0": dev}).run(trace)
    assert trace.is_compact and tl.engine_events == 1
    ops = trace.ops
    lat = [c.latency for c in tl.costs]
    disp = [dev.host_issue().dispatch(op) for op in ops]
    new = [i == 0 or (op.phase, op.step) != (ops[i - 1].phase, ops[i - 1].step)
           for i, op in enumerate(ops)]
    assert sum(new) == sc.gen_len
    cost = [sw.per_step + sw.per_request * op.requests for op in ops]
    np.testing.assert_allclose(tl.end, _loop_ends(lat, disp, new, cost), rtol=1e-12)


def test_tensor_parallel_system_run_equals_the_event_run():
    # a DGX system, TP2 (all-reduces on the stream), through simulate as `xpusim run` runs it
    from sim.run import simulate

    a = load_arch_with_software("dgx-h100", "vllm")
    sc = Scenario(batch=4, prompt_len=64, gen_len=7, tp=2, attention="flash")
    fast = simulate(a, get_model("llama2-7b"), sc)
    slow = simulate(a, get_model("llama2-7b"), sc, coarsen=False)
    assert fast.metrics["engine_events"] == 1 and slow.metrics["engine_events"] > 1000
    f, s = fast.ops.sort_values("id"), slow.ops.sort_values("id")
    assert (f["kind"] == "collective").sum() == (2 * 32 + 1) * sc.gen_len   # + logits gather
    np.testing.assert_allclose(f["end_s"], s["end_s"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(f["start_s"], s["start_s"], rtol=1e-12, atol=0)
    assert fast.metrics["ttft_s"] == pytest.approx(slow.metrics["ttft_s"], rel=1e-12)
