"""Memories are contended resources: concurrent transfers share bandwidth, a lone one does not."""

import math
import random

import numpy as np
import pytest
import simpy

from arch import load_arch
from sim.devices.base import device_for
from sim.engine import Engine
from sim.invariants import check_invariants
from sim.resources import SharedBandwidth
from sim.result import op_table
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model


def _finish_times(sizes_and_starts, bandwidth=100.0):
    env = simpy.Environment()
    mem = SharedBandwidth(env, bandwidth)
    done = {}

    def flow(i, nbytes, start):
        yield env.timeout(start)
        yield mem.transfer(nbytes)
        done[i] = env.now

    for i, (nbytes, start) in enumerate(sizes_and_starts):
        env.process(flow(i, nbytes, start))
    env.run()
    return done, mem


def test_lone_transfer_runs_at_full_bandwidth():
    done, _ = _finish_times([(500.0, 0.0)])
    assert done[0] == pytest.approx(5.0)


def test_concurrent_transfers_share_equally():
    done, mem = _finish_times([(500.0, 0.0), (500.0, 0.0)])
    assert done[0] == pytest.approx(10.0) and done[1] == pytest.approx(10.0)
    assert mem.utilisation(10.0) == pytest.approx(1.0)


def test_late_arrival_and_early_departure():
    # A: 1000 B from t=0; B: 200 B from t=2. Alone until 2 (200 B), then 50 B/s each:
    # B ends at 6 (A has 400 B left... 1000-200-200=600), A alone again at 100 B/s: ends at 12.
    done, _ = _finish_times([(1000.0, 0.0), (200.0, 2.0)])
    assert done[1] == pytest.approx(6.0)
    assert done[0] == pytest.approx(12.0)


def test_two_streams_on_one_gpu_contend_for_hbm():
    arch = load_arch("h100")
    dev = device_for(arch, "tile")
    sc = Scenario(batch=1, prompt_len=16, gen_len=3)
    model = get_model("llama2-7b")
    alone = trace_model(model, sc)
    t_alone = Engine({"s": dev}).run(alone)
    single = float(t_alone.end.max())
    # the same trace split over two streams of one device: decode steps of one layer may overlap
    pair = trace_model(model, sc)
    for op in pair.ops:
        op.device = "a" if op.id % 2 else "b"
        op.deps = ()  # let the two streams overlap freely
    engine = Engine({"a": dev, "b": dev})
    tl = engine.run(pair)
    both = float(tl.end.max())
    hbm_time = sum(c.dram_bytes for c in tl.costs) / dev.sustained_bandwidth()
    assert both >= hbm_time * (1 - 1e-9)          # the shared HBM is never exceeded
    assert both < single                            # but the streams do overlap
    assert "a" in engine.memories and engine.memories["a"] is engine.memories["b"]
    table = op_table(pair, tl)
    assert check_invariants(pair, table)["time_ge_roofline"] == "passed"


def test_single_stream_unchanged_by_memory_model():
    dev = device_for(load_arch("h100"), "tile")
    tr = trace_model(get_model("gpt2-small"), Scenario(batch=1, prompt_len=16, gen_len=3))
    engine = Engine({"s": dev})
    tl = engine.run(tr)
    assert engine.memories == {}
    assert all(abs((e - s) - c.latency) < 1e-12 for s, e, c in zip(tl.start, tl.end, tl.costs,
                                                                     strict=True))


def test_reservation_slows_transfers_to_the_rest_of_the_bandwidth():
    # 100 B/s; 300 B start at 0; a 0.75 share is reserved from t=1 to t=3:
    # 100 B by t=1, then 25 B/s for 2 s (50 B), then the last 150 B at 100 B/s: ends at 4.5 s
    env = simpy.Environment()
    mem = SharedBandwidth(env, 100.0)
    done = {}

    def flow():
        yield mem.transfer(300.0)
        done["t"] = env.now

    def pim():
        yield env.timeout(1.0)
        mem.reserve(0.75)
        yield env.timeout(2.0)
        mem.release(0.75)

    env.process(flow())
    env.process(pim())
    env.run()
    assert done["t"] == pytest.approx(4.5)
    assert mem.reserved == 0.0


def test_reservation_must_leave_bandwidth():
    mem = SharedBandwidth(simpy.Environment(), 100.0, "hbm")
    mem.reserve(0.5)
    with pytest.raises(ValueError, match="hbm: cannot reserve 0.5"):
        mem.reserve(0.5)


@pytest.mark.parametrize("start, nbytes, bandwidth", [
    (0.0, 500.0, 100.0), (0.37, 1.25e6, 3.35e12), (1234.5678, 7.0e8, 2.0e12),
    (3.0e-5, 123456.0, 9.0e11)])
def test_solo_end_equals_a_lone_transfer_event(start, nbytes, bandwidth):
    """The closed form the arrays engine stamps quiet ops with (solo_end, add_solo) gives the
    finish time, bytes, busy time and last change a lone transfer's own events give."""
    env = simpy.Environment()
    mem = SharedBandwidth(env, bandwidth)
    done = []

    def flow():
        yield env.timeout(start)
        yield mem.transfer(nbytes)
        done.append(env.now)

    env.process(flow())
    env.run()
    twin = SharedBandwidth(simpy.Environment(), bandwidth)
    end = twin.solo_end(nbytes, start)
    assert end == done[0]                       # bit for bit, not approx
    twin.add_solo(nbytes, start, end)
    assert (twin.bytes_moved, twin.busy_time, twin._last) == \
        (mem.bytes_moved, mem.busy_time, mem._last)
    assert end == pytest.approx(start + nbytes / bandwidth)


def test_solo_end_refuses_a_busy_or_reserved_resource():
    env = simpy.Environment()
    mem = SharedBandwidth(env, 100.0)
    assert mem.solo_end(100.0, 0.0) == 1.0
    mem.transfer(50.0)
    assert mem.solo_end(100.0, 0.0) is None     # something in flight: not alone
    other = SharedBandwidth(env, 100.0)
    other.reserve(0.5)
    assert other.solo_end(100.0, 0.0) is None   # a PIM reservation takes part of it


def _chain_with_one_beside(ops, y_bytes, y_start, bandwidth):
    """SharedBandwidth's own events: ``ops`` (latency s, bytes) one after the other on one
    stream, each done when its latency and its transfer are; a transfer of ``y_bytes``
    from ``y_start`` (s) beside them. (each op's end, y's end, the resource)."""
    env = simpy.Environment()
    mem = SharedBandwidth(env, bandwidth)
    ends, y_end = [], []

    def chain():
        for latency, nbytes in ops:
            yield env.all_of([env.timeout(latency), mem.transfer(nbytes)])
            ends.append(env.now)

    def beside():
        yield env.timeout(y_start)
        yield mem.transfer(y_bytes)
        y_end.append(env.now)

    env.process(chain())
    env.process(beside())
    env.run()
    return ends, y_end[0], mem


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_pair_replay_gives_a_shared_resource_its_own_floats(seed):
    """PairReplay (the arrays engine's window of a transfer beside a run) finishes every
    transfer at the time the resource's own events do, and counts the same bytes, busy
    time and last change, bit for bit: the transfer beside arrives at a random time and
    spans several of the run's transfers, which it slows and which slow it."""
    rng = random.Random(seed)
    bandwidth = 3.35e12
    ops = [(rng.uniform(1e-7, 2e-6), rng.uniform(1e5, 5e6)) for _ in range(6)]
    y_bytes, y_start = rng.uniform(5e6, 2e7), rng.uniform(0.0, 2e-6)
    ends, y_end, mem = _chain_with_one_beside(ops, y_bytes, y_start, bandwidth)
    twin = SharedBandwidth(simpy.Environment(), bandwidth)
    replay = twin.pair_replay(y_bytes, y_start)
    got, t = [], 0.0
    for latency, nbytes in ops:
        assert replay.upto(t, False)
        replay.arrive_op(nbytes, t)
        if replay.y_due == t:
            replay.arrive_y(t)
        finish = t
        while replay.op_left is not None:
            finish = replay.step()
        t = max(t + latency, finish)
        assert replay.upto(t, False)
        got.append(t)
    while replay.in_flight or replay.y_done is None:
        replay.step()
    assert got == ends and replay.y_done == y_end          # every finish, bit for bit
    # shared: y spans several of the run's transfers, and it slowed them
    assert sum(e < y_end for e in ends) >= 2
    assert y_end > y_start + y_bytes / bandwidth
    replay.commit()
    assert (twin.bytes_moved, twin.busy_time, twin._last) == \
        (mem.bytes_moved, mem.busy_time, mem._last)


def test_pair_replay_refuses_a_busy_or_reserved_resource():
    env = simpy.Environment()
    mem = SharedBandwidth(env, 100.0)
    assert mem.pair_replay(10.0, 0.0) is not None
    mem.transfer(50.0)
    assert mem.pair_replay(10.0, 0.0) is None
    other = SharedBandwidth(env, 100.0)
    other.reserve(0.5)
    assert other.pair_replay(10.0, 0.0) is None


def test_pair_replay_reports_a_tie_between_the_timer_and_the_arrival():
    # the run's 100 B finish at t = 1 s exactly when y arrives: the per-op engine's order of
    # those two events could differ, so the window must not be replayed
    replay = SharedBandwidth(simpy.Environment(), 100.0).pair_replay(50.0, 1.0)
    replay.arrive_op(100.0, 0.0)
    assert replay.timer == 1.0 and replay.y_due == 1.0
    assert math.isnan(replay.step())
    assert not replay.upto(2.0, False)
    # a change exactly at the end of what is made: refused, unless it is y's arrival and y
    # comes after the run's op arriving then
    ends_then = SharedBandwidth(simpy.Environment(), 100.0).pair_replay(50.0, 5.0)
    ends_then.arrive_op(100.0, 0.0)
    assert not ends_then.upto(1.0, True)           # the run's transfer finishes at 1 s
    assert ends_then.upto(0.5, False) and ends_then.timer == 1.0
    arrives_then = SharedBandwidth(simpy.Environment(), 100.0).pair_replay(50.0, 1.0)
    assert not arrives_then.upto(1.0, False) and arrives_then.upto(1.0, True)
    assert arrives_then.y_due == 1.0               # nothing was made


def test_solo_end_refuses_a_transfer_its_timer_would_leave_unfinished():
    # 100 B at 3.35 TB/s take 3e-11 s, under half a float step at t = 1e6 s: the timer
    # would fire at t itself with every byte left, so no closed form may stand in for it
    mem = SharedBandwidth(simpy.Environment(), 3.35e12)
    assert mem.solo_end(100.0, 1.0e6) is None
    assert mem.solo_end(100.0, 1.0) == 1.0 + 100.0 / 3.35e12
    timers = mem.solo_ends(np.array([100.0, 100.0]), np.array([1.0e6, 1.0]),
                           np.array([True, True]))
    assert np.isnan(timers[0]) and timers[1] == 1.0 + 100.0 / 3.35e12


def test_transfer_below_the_clock_resolution_finishes_instead_of_stalling():
    # 100 B at 3.35 TB/s take 3e-11 s, under half a float step at t = 1e6 s (5.8e-11 s)
    # and above FINISH_TOL's slack (3.35 B): the timer fires at t itself with every byte
    # left; the transfer is done there (its timer used to fire again and again at t)
    env = simpy.Environment()
    mem = SharedBandwidth(env, 3.35e12)
    done = []

    def flow():
        yield env.timeout(1.0e6)
        yield mem.transfer(100.0)
        done.append(env.now)

    env.process(flow())
    env.run(until=1.0e6 + 1.0)
    assert done == [1.0e6]
    assert mem.bytes_moved == 100.0 and not mem._left
    # the replay the arrays engine uses ends it the same way
    replay = SharedBandwidth(simpy.Environment(), 3.35e12).pair_replay(100.0, 1.0e6)
    assert replay.step() == 1.0e6 and replay.timer == 1.0e6      # y arrives
    assert replay.step() == 1.0e6 and replay.y_done == 1.0e6 and not replay.in_flight
