"""Memories are contended resources: concurrent transfers share bandwidth, a lone one does not."""

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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_gives_a_shared_resource_its_own_floats(seed):
    """Replay (the arrays engine's transfers ahead of the clock) finishes each transfer at the
    time the resource's own events do, and counts the same bytes, busy time and last
    change, bit for bit, for overlapping transfers arriving at random times."""
    rng = random.Random(seed)
    arrivals = sorted((rng.uniform(0.0, 4e-6), rng.uniform(1e5, 5e6)) for _ in range(6))
    bandwidth = 3.35e12
    done, mem = _finish_times([(nbytes, at) for at, nbytes in arrivals], bandwidth)
    twin = SharedBandwidth(simpy.Environment(), bandwidth)
    replay = twin.replay()
    finished: dict[int, float] = {}
    for i, (at, nbytes) in enumerate(arrivals):
        while replay.timer is not None and replay.timer < at:
            now = replay.timer
            finished.update((key, now) for key in replay.fire())
        replay.arrive(i, nbytes, at)
    while replay.timer is not None:
        now = replay.timer
        finished.update((key, now) for key in replay.fire())
    assert finished == done                    # every finish, bit for bit
    # transfers overlapped: the shares, not lone transfers, were replayed
    assert any(done[i] > arrivals[i + 1][0] for i in range(len(arrivals) - 1))
    replay.commit()
    assert (twin.bytes_moved, twin.busy_time, twin._last) == \
        (mem.bytes_moved, mem.busy_time, mem._last)


def test_replay_refuses_a_busy_or_reserved_resource():
    env = simpy.Environment()
    mem = SharedBandwidth(env, 100.0)
    assert mem.replay() is not None
    mem.transfer(50.0)
    assert mem.replay() is None
    other = SharedBandwidth(env, 100.0)
    other.reserve(0.5)
    assert other.replay() is None


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
    replay = SharedBandwidth(simpy.Environment(), 3.35e12).replay()
    replay.arrive("t", 100.0, 1.0e6)
    assert replay.timer == 1.0e6 and replay.fire() == ["t"] and replay.timer is None
