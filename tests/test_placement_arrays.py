"""Placement runs of a trace held as arrays equal the op-by-op path, without an op object.

A placement that keeps weights or the KV cache off the device moves them around each run of
one (step, layer). ``sim.system.layer_runs.array_runs`` finds those runs in the arrays,
``sim.system.array_plan.streams_plan`` builds the transfers from them and
``sim.engine_planned.run_planned_arrays`` times the ops and transfers from the arrays;
``sim.system.schedule.PLAN_FROM_ARRAYS = False`` gives the op-by-op plan (``op_runs``) and the
pass over op objects they replace. Runs, plans, tables and metrics must be equal exactly.
"""

import pytest
from conftest import arrays_run_and_op_by_op

from arch import load_arch
from sim.devices.base import device_for
from sim.run import simulate
from sim.system.layer_runs import array_runs, op_runs
from sim.system.placement import parse_placement
from sim.system.schedule import Policies, stage_of_layers
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.tracer import trace_model

RUN_TRACES = {
    "dense": ("llama2-7b", {"batch": 8, "prompt_len": 64, "gen_len": 6}, None),
    "tp2-pp2-mb4": ("llama2-13b", {"batch": 8, "prompt_len": 64, "gen_len": 6, "tp": 2,
                                   "pp": 2, "microbatches": 4}, None),
    "moe-ep4": ("mixtral-8x7b", {"batch": 8, "prompt_len": 32, "gen_len": 5, "tp": 4,
                                 "ep": 4}, None),
    # a split op's two shares read one computation: its weights count once
    "duplex": ("llama2-7b", {"batch": 16, "prompt_len": 64, "gen_len": 6}, "duplex"),
    "neupims-mb2": ("gpt3-7b", {"batch": 16, "prompt_len": 64, "gen_len": 6,
                                "microbatches": 2}, "neupims"),
}


def _trace(model, scenario, arch):
    device = device_for(load_arch(arch), "tile") if arch else None
    trace = trace_model(get_model(model), Scenario(**scenario),
                        units=device.unit_ops() if device else (), compact=True)
    return device.split_trace(trace) if device else trace


@pytest.mark.parametrize("name", list(RUN_TRACES))
def test_runs_from_arrays_equal_runs_of_ops(name):
    model, scenario, arch = RUN_TRACES[name]
    arrays, objects = _trace(model, scenario, arch), _trace(model, scenario, arch)
    m = get_model(model)
    stage_at = stage_of_layers(m.n_layers, Scenario(**scenario).pp)
    got = array_runs(arrays.compact, stage_at, m.n_layers)
    want = op_runs(objects.ops, stage_at, m.n_layers)
    assert list(got) == list(want)            # stages in the order their first run starts
    for stage in want:
        a, b = got[stage], want[stage]
        for column in ("step", "layer", "phase", "first", "last", "tokens"):
            assert getattr(a, column) == getattr(b, column), column
            assert [type(v) for v in getattr(a, column)] == \
                [type(v) for v in getattr(b, column)], column
        # the sums the transfers take, added in the same order: the same floats
        assert a.weights == b.weights and a.kv == b.kv
    # NeuPIMs' micro-batches interleave within a layer (cut where ops enter or leave the PIM
    # unit): its runs hold both, each with its first op and tokens
    if name == "neupims-mb2":
        assert any(len(first) == 2 for runs in want.values() for first in runs.first)


CASES = {
    # the KV cache on a CXL card: fetched before each decode run, each step's K and V saved
    "cxl-kv": ("spr-a100-cxl1", "llama2-7b", {"batch": 8, "prompt_len": 256, "gen_len": 12},
               {"prefetch": 1}, "kv_cache=cxl0"),
    # half the weights in host DDR, fetched two runs ahead
    "offload": ("a6000-offload", "llama2-13b", {"batch": 8, "prompt_len": 256,
                                                "gen_len": 10}, {"prefetch": 2},
                "weights=gpu.hbm:0.5,host_ddr:0.5"),
    # the KV cache on an SSD, relayed through host memory
    "relay": ("a6000-storage", "llama2-7b", {"batch": 8, "prompt_len": 256, "gen_len": 8},
              {"relay_storage": True}, "kv_cache=ssd0.flash"),
    # two stages of four micro-batches, collectives overlapped, the KV cache in host DDR
    "tp2-pp2-mb4-overlap": ("dgx-h100", "llama2-13b", {"batch": 8, "prompt_len": 128,
                                                      "gen_len": 8, "tp": 2, "pp": 2,
                                                      "microbatches": 4},
                            {"overlap": True}, "kv_cache=host_ddr"),
    # experts on ranks, some weights in host DDR
    "moe-ep4": ("dgx-a100", "mixtral-8x7b", {"batch": 8, "prompt_len": 128, "gen_len": 6,
                                             "tp": 4, "ep": 4}, {},
                "weights=gpu.hbm:0.6,host_ddr:0.4"),
}


def _simulate(name):
    arch, model, scenario, policies, placement = CASES[name]
    return simulate(load_arch(arch), get_model(model), Scenario(**scenario),
                    placement=parse_placement(placement), policies=Policies(**policies))


@pytest.mark.parametrize("name", list(CASES))
def test_placement_from_arrays_equals_op_by_op(name, monkeypatch):
    new, _ = arrays_run_and_op_by_op(lambda: _simulate(name), monkeypatch)
    assert len(new.transfers) > 0


#: a NeuPIMs card beside DDR4 host memory over PCIe 4.0 x16 (figures as a6000-offload's host
#: side): a system whose device reserves shares of its memory for its PIM unit's ops
NEUPIMS_HOST = """
name: neupims-host
type: system
components:
  npu: {kind: device, arch: neupims, count: 1}
  host_ddr: {kind: memory, memory: ddr4, capacity: 256 GiB, channels: 8,
             channel_bandwidth: 25.6 GB/s, efficiency: 0.7, latency: 100 ns,
             energy_per_bit: 20 pJ/bit}
links:
  pcie: {between: [npu, host_ddr], kind: pcie, generation: 4, lanes: 16, efficiency: 0.85,
         latency: 1 us, energy_per_bit: 10 pJ/bit}
"""


def test_pim_shares_beside_placed_transfers_from_arrays_equal_op_by_op(tmp_path, monkeypatch):
    """Half a NeuPIMs card's KV cache in host DDR: its PIM unit's decode ops each reserve a
    share of the card's memory (``memory_share``, gathered per kind into the planned run's
    share column, ``sim.engine_planned.run_planned_arrays``) while the KV transfers and the
    NPU's ops move bytes through it; the run from the arrays is the op-by-op run bit for
    bit (without the shares, the card's memory would carry other bytes than those routed;
    the shares' size shows in no figure of this run: nothing else is in flight on the card's
    memory while a PIM op holds its share - halved, every table is the same)."""
    path = tmp_path / "neupims-host.yaml"
    path.write_text(NEUPIMS_HOST)

    def run():
        return simulate(load_arch(str(path)), get_model("gpt3-7b"),
                        Scenario(batch=16, prompt_len=64, gen_len=6, microbatches=2),
                        placement=parse_placement("kv_cache=npu.dram:0.5,host_ddr:0.5"))

    new, _ = arrays_run_and_op_by_op(run, monkeypatch)
    assert len(new.transfers) > 0 and any(s.endswith(".pim") for s in set(new.ops["stream"]))


def test_transfers_of_equal_bytes_share_their_loads():
    # every decode step fetches each layer's KV cache (equal bytes across a step's layers)
    # and saves its new K and V (equal bytes every step): one tuple of loads per route and
    # size, each load the bytes times the copies the route's resource carries
    arch = load_arch("spr-a100-cxl1")
    r = simulate(arch, get_model("llama2-7b"), Scenario(batch=8, prompt_len=256, gen_len=6),
                 placement=parse_placement("kv_cache=cxl0"))
    transfers = r.transfers
    fetch = transfers[transfers["dst"] != "cxl0"]
    assert len(fetch) and fetch.groupby("step")["bytes"].nunique().max() == 1
    plan_loads = _plan_transfers(arch)
    assert len({id(tr.loads) for tr in plan_loads}) == \
        len({(tr.stream, tr.src, tr.dst, tr.nbytes) for tr in plan_loads}) < len(plan_loads)
    for tr in plan_loads:
        assert [ld.nbytes for ld in tr.loads] == [tr.nbytes] * len(tr.loads)


def _plan_transfers(arch):
    """The transfers the arrays' plan of a short CXL-KV run makes."""
    from sim.run import memory_per_device
    from sim.system.budget import place_on_system
    from sim.system.schedule import build_plan, stages_for
    from sim.system.topology import build_system

    model, sc = get_model("llama2-7b"), Scenario(batch=8, prompt_len=256, gen_len=6)
    system, device = build_system(arch), device_for(arch, "tile")
    stages_for(system, 1, 1)
    placed = place_on_system(system, parse_placement("kv_cache=cxl0"),
                             memory_per_device(model, sc), 1)
    trace = trace_model(model, sc, compact=True)
    plan = build_plan(trace, system, device, placed, Policies())
    assert trace.is_compact and plan.transfers
    return plan.transfers


def test_stage_runs_by_hand():
    """One stage's 10 ops (ids 100-109) in 4 runs (steps 0, 1, 2, 3): per run its start, last
    op, first op per micro-batch in the order they come and their tokens, the weight bytes
    of each computation where it first occurs and the KV bytes of each (micro-batch,
    computation), added left to right from 0.0 as Python's sum of a dict's values: 1e16 + 1
    + 1 rounds to 1e16 (1 + 1 + 1e16 would give 1e16 + 2); a repeated key and a zero add
    nothing."""
    import numpy as np

    from sim.engine_aot import kernels

    n = 10
    # the stage's ops are 100..109 of a trace of 110 (the others another stage's)
    ids = np.arange(100, 110)

    def col(values, dtype=np.int32):
        out = np.full(110, 99, dtype=dtype)
        out[100:] = values
        return out

    step = col([0, 0, 0, 0, 0, 1, 1, 2, 3, 3])
    mb = col([5, 6, 6, 6, 5, 6, 5, 5, 5, 6])             # from mb_lo = 5
    comp = np.array([7, 8, 7, 9, 5, 7, 8, 1, 2, 4])      # kind i's computation
    value = np.array([1e16, 1.0, 1e16, 1.0, 0.0, 0.5, 0.25, 0.0, 3.0, 3.0])
    starts, last, tokens, n_first, first_ids = (np.empty(n, dtype=np.int64) for _ in range(5))
    w, kv = np.empty(n), np.empty(n)
    n_runs, n_f = kernels().stage_runs(
        ids, step, col(0), col(0, np.int8), mb, 5, col(np.arange(n)), col(np.arange(1, n + 1)),
        value, value, comp, 10, starts, last, tokens, w, kv, n_first, first_ids,
        np.full(2, -1), np.full(10, -1), np.full(20, -1))
    assert (n_runs, n_f) == (4, 7)
    assert starts[:4].tolist() == [0, 5, 7, 8] and last[:4].tolist() == [104, 106, 107, 109]
    assert n_first[:4].tolist() == [2, 2, 1, 2]
    assert first_ids[:7].tolist() == [100, 101, 105, 106, 107, 108, 109]
    assert tokens[:4].tolist() == [1 + 2, 6 + 7, 8, 9 + 10]
    # weights by computation: run 0 reads 7, 8, 7 again, 9 (and 5 with no bytes)
    assert w[:4].tolist() == [1e16, 0.75, 0.0, 6.0] and 1.0 + 1.0 + 1e16 != 1e16
    # KV by (micro-batch, computation): (1, 7) is not (0, 7): 1e16 + 1 + 1e16 + 1 = 2e16
    assert kv[:4].tolist() == [2e16, 0.75, 0.0, 6.0]


def test_stage_members_by_hand():
    """Ten ops of four layers on two stages (layers 0-1 stage 0, 2-3 stage 1; stage_at is
    indexed by layer + 1): the embedding (-1) and head (4) layers, a collective kind and a
    hosted op belong to no run; the others by stage in op order, the stages in the order
    their first op comes (stage 1 first here); without ``hosted`` the hosted op is kept."""
    import numpy as np

    from sim.engine_aot import kernels

    layer = np.array([-1, 2, 0, 3, 1, 2, 0, 4, 3, 1], dtype=np.int32)
    kind = np.array([0, 0, 1, 0, 0, 0, 0, 0, 2, 0], dtype=np.int32)
    off_kind = np.array([0, 1, 0], dtype=np.uint8)          # kind 1: a collective
    hosted = np.zeros(10, dtype=np.uint8)
    hosted[5] = 1
    stage_at = np.array([0, 0, 0, 1, 1, 1], dtype=np.int64)

    def members(hosted):
        ids, bounds, order = np.empty(10, dtype=np.int64), np.empty(3, dtype=np.int64), \
            np.empty(2, dtype=np.int64)
        n = kernels().stage_members(layer, kind, off_kind, hosted, stage_at, 4, ids, bounds,
                                    order)
        return order[:n].tolist(), [ids[bounds[s]:bounds[s + 1]].tolist() for s in range(2)]

    assert members(hosted) == ([1, 0], [[4, 6, 9], [1, 3, 8]])
    assert members(np.zeros(0, dtype=np.uint8)) == ([1, 0], [[4, 6, 9], [1, 3, 5, 8]])


def test_planned_tasks_of_32_bit_arrays_take_a_32_bit_dependency_table(monkeypatch):
    """A placement run of a trace held as arrays (32-bit dependency arrays) builds its tasks'
    dependency table 32-bit (half the memory of a 64-bit one: 97 MB less at the peak of the
    9.9M-op 70B run with half its KV cache in host DDR), entry for entry the table that the
    same arrays widened to 64 bits give; the run on the 64-bit table equals it bit for bit."""
    from types import SimpleNamespace

    import numpy as np

    import sim.engine_planned as engine_planned

    real = engine_planned._dependencies
    tables = []

    def both(ops, arrays, transfers, extra, n):
        ptr, idx = real(ops, arrays, transfers, extra, n)
        wide = SimpleNamespace(dep_ptr=np.asarray(arrays.dep_ptr, dtype=np.int64),
                               dep_idx=np.asarray(arrays.dep_idx, dtype=np.int64))
        tables.append((ptr, idx, *real(ops, wide, transfers, extra, n)))
        return tables[-1][2:] if wide_run else (ptr, idx)

    monkeypatch.setattr(engine_planned, "_dependencies", both)
    wide_run = False
    narrow = _simulate("tp2-pp2-mb4-overlap")
    ptr, idx, ptr8, idx8 = tables[0]
    assert ptr.dtype == idx.dtype == np.int32 and ptr8.dtype == idx8.dtype == np.int64
    assert len(ptr) > len(narrow.ops) + 1      # the transfers' tasks too
    assert np.array_equal(ptr, ptr8) and np.array_equal(idx, idx8)
    wide_run = True
    wide = _simulate("tp2-pp2-mb4-overlap")
    for table in ("ops", "transfers", "resources"):
        a, b = getattr(narrow, table), getattr(wide, table)
        for col in a.columns:
            assert a[col].equals(b[col]), (table, col)
    assert narrow.metrics == wide.metrics


def test_planned_run_asks_for_room_for_its_task_tables_first(monkeypatch):
    """Before it makes its task tables, a planned run of arrays asks for room for them
    (``sim.memory_hint.expect``): 72 B per task (eight 8-byte tables, two 4-byte ones),
    each op and each transfer's two tasks; one request per run."""
    import sim.engine_planned as engine_planned

    asked = []
    monkeypatch.setattr(engine_planned, "expect", asked.append)
    got = _simulate("tp2-pp2-mb4-overlap")
    assert engine_planned.PLANNED_BYTES_PER_TASK == 72
    assert asked == [(len(got.ops) + 2 * len(got.transfers)) * 72]


def test_the_room_asked_for_is_the_bytes_of_the_task_tables(monkeypatch):
    """``PLANNED_BYTES_PER_TASK`` (72 B) is what the pass's per-task tables take, read off the
    arrays it is given (dependency offsets, stream codes, task before, latency, bytes, tasks
    by stream, each task's link-load list) plus the three it makes per task (each task's
    memory code, start and end: 8 B each): a table made wider or narrower, or one more,
    fails here until the request follows it."""
    import sim.engine_planned as engine_planned

    real, widths = engine_planned.shared_run, []

    def seen(arrays, stream, prev, names, lat, size, share, memory_of, loads, by_stream,
             bounds):
        n_tasks = len(lat)
        assert len(arrays.dep_ptr) == n_tasks + 1 and len(stream) == len(prev) == n_tasks
        assert len(size) == len(loads.of_op) == n_tasks and share is None
        widths.append(sum(x.dtype.itemsize for x in (arrays.dep_ptr, stream, prev, lat, size,
                                                     loads.of_op, by_stream)) + 3 * 8)
        return real(arrays, stream, prev, names, lat, size, share, memory_of, loads,
                    by_stream, bounds)

    monkeypatch.setattr(engine_planned, "shared_run", seen)
    _simulate("tp2-pp2-mb4-overlap")
    assert widths == [engine_planned.PLANNED_BYTES_PER_TASK]
