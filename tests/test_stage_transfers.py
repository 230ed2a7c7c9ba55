"""A plan's transfers as columns (sim/system/transfer_rows.py) and a stage's placement
transfers made for all its runs at once (sim/system/stage_transfers.py): the same transfers,
ids, waits, resources and results as the walk run by run, and a small stage counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

import sim.system.array_plan as array_plan
import sim.system.schedule as schedule
from arch import load_arch
from sim.run import simulate
from sim.system.layer_runs import StageRuns
from sim.system.placement import parse_placement
from sim.system.plan import Load, Plan, Transfer
from sim.system.route_transfers import IN_PLACE
from sim.system.schedule import Policies
from sim.system.stage_transfers import add_stage_transfers, run_bytes
from sim.system.topology import build_system
from sim.system.transfer_rows import TransferRows, transfer_users
from workloads.models import get_model
from workloads.scenario import Scenario


def _transfer(i: int, stream: str = "gpu0.copy", loads=(), deps=(), nbytes=1.0e6, **kw):
    return Transfer(i, "w", "weights", stream, "host_ddr", "gpu0.hbm", nbytes, 2,
                    ("pcie.gpu0",), loads, 1.5e-6, nbytes / 2.5e10, deps, **kw)


def test_rows_read_back_the_transfers_appended():
    shared = (Load("host_ddr", 2.0e6), Load("pcie.gpu0<", 1.0e6))
    made = [_transfer(7, loads=shared, deps=(3,), phase="decode", layer=1, step=4, release=9,
                      energy_J=0.25, anchor=2.5),
            _transfer(8, stream="gpu0.copy_out", deps=(3, 5), nbytes=4.0e6, phase="prefill",
                      release=IN_PLACE, anchor=6.5),
            _transfer(9, loads=shared, phase="decode", layer=2, anchor=-1.0)]
    rows = TransferRows(made)
    assert len(rows) == 3 and list(rows) == made and rows == made and rows[-1] == made[2]
    assert rows[0].loads is shared and rows[2].loads is shared   # the tuple itself, shared
    assert rows.column("id").tolist() == [7, 8, 9] and rows.positional(7)
    assert not rows.positional(6)
    ptr, idx = rows.deps()
    assert ptr.tolist() == [0, 1, 3, 3] and idx.tolist() == [3, 3, 5]
    assert rows.column("nbytes").tolist() == [1.0e6, 4.0e6, 1.0e6]
    assert rows.column("release").tolist() == [9, IN_PLACE, -1]
    assert rows.streams() == {"gpu0.copy", "gpu0.copy_out"}
    # two routes (the streams differ), two tuples of loads, two (stream, loads) pairs
    assert len(rows.routes) == 2 and len(rows.loads) == 2
    assert sorted((s, len(t)) for s, t in transfer_users(rows)) == [
        ("gpu0.copy", 2), ("gpu0.copy_out", 0)]
    with pytest.raises(IndexError):
        rows[3]


def test_rows_added_in_a_block_follow_the_rows_added_one_by_one():
    rows = TransferRows([_transfer(0)])
    route = rows.column("route")[0]
    rows.extend({"id": [1, 2], "route": [route, route], "loads": [0, 0],
                 "phase": [rows.phase_code("decode")] * 2, "layer": [0, 1], "step": [3, 3],
                 "release": [10, 11], "nbytes": [5.0, 6.0], "floor": [0.5, 0.6],
                 "energy": [1.0, 2.0], "anchor": [9.5, 10.5]}, [2, 0], [0, 4])
    rows.append(_transfer(3, deps=(1,)))
    got = list(rows)
    assert [t.id for t in got] == [0, 1, 2, 3] and got[1].deps == (0, 4)
    assert got[2].deps == () and got[3].deps == (1,) and got[2].layer == 1
    assert (got[1].nbytes, got[1].floor, got[1].energy_J, got[1].anchor) == (5.0, 0.5, 1.0,
                                                                              9.5)
    assert got[1].name == "w" and got[1].hops == ("pcie.gpu0",) and got[1].replicas == 2


def _hand_plan(depth: int):
    """Three decode runs of one stage, weights half on host DDR (0.5 of 100 B) and the KV
    cache all there (kv 40 B, 8 B a token), by :func:`add_stage_transfers`."""
    system = build_system(load_arch("a6000-offload"))
    stage = schedule.stages_for(system, 1, 1)[0]
    runs = StageRuns(step=[1, 1, 2], layer=[0, 1, 0], phase=["prefill", "decode", "decode"],
                     first=[(10,), (20, 25), (30,)], last=[19, 29, 39], tokens=[4, 2, 2],
                     weights=[100.0, 100.0, 100.0], kv=[40.0, 40.0, 48.0])
    plan = Plan(streams={}, first_transfer_id=50)
    need, save = run_bytes(runs, 0.0, 8.0, set())
    add_stage_transfers(plan, runs, [("weights", "host_ddr", 0.5), ("kv_cache", "host_ddr",
                                                                     1.0)],
                        need, save, depth, lambda cls, tier, out: schedule._route_of(
                            plan, system, cls, tier, stage, out))
    return plan


@pytest.mark.parametrize("depth", [0, 1])
def test_a_stage_counted_by_hand(depth):
    plan = _hand_plan(depth)
    got = [(t.id, t.tensor, t.stream.split(".")[1], t.nbytes, t.deps, t.release, t.anchor)
           for t in plan.transfers]
    # run 0 (prefill): fetch weights (50 B) only, save its whole KV cache (40 B);
    # runs 1, 2 (decode): fetch weights and KV cache, save 2 tokens' K and V (16 B);
    # a fetch waits for the end of the run depth + 1 before it
    w1 = () if depth else (19,)
    w2 = (19,) if depth else (29,)
    assert got == [
        (50, "weights", "copy", 50.0, (), 19, 9.5),
        (51, "kv_cache", "copy_out", 40.0, (19,), IN_PLACE, 19.5),
        (52, "weights", "copy", 50.0, w1, 29, 19.5),
        (53, "kv_cache", "copy", 40.0, w1, 29, 19.5),
        (54, "kv_cache", "copy_out", 16.0, (29,), IN_PLACE, 29.5),
        (55, "weights", "copy", 50.0, w2, 39, 29.5),
        (56, "kv_cache", "copy", 48.0, w2, 39, 29.5),
        (57, "kv_cache", "copy_out", 16.0, (39,), IN_PLACE, 39.5)]
    # each run's first ops wait for its fetches
    assert plan.extra_deps == {10: (50,), 20: (52, 53), 25: (52, 53), 30: (55, 56)}
    # equal bytes over one route share one tuple of loads
    trs = list(plan.transfers)
    assert trs[2].loads is trs[0].loads and trs[3].loads is not trs[6].loads


CASES = [
    ("spr-a100-cxl1", "llama2-7b", dict(batch=8, prompt_len=128, gen_len=24), "kv_cache=cxl0",
     {}),
    ("a6000-offload", "llama2-13b", dict(batch=1, prompt_len=64, gen_len=12),
     "weights=gpu.hbm:0.3,host_ddr:0.7", dict(prefetch=2)),
    ("spr-a100-cxl2", "llama2-13b", dict(batch=8, prompt_len=64, gen_len=12),
     "kv_cache=cxl0:0.5,cxl1:0.5", {}),
    ("dgx-h100", "llama2-70b", dict(batch=8, prompt_len=64, gen_len=8, tp=2, pp=4,
                                    microbatches=4),
     "kv_cache=gpu.hbm:0.5,host_ddr:0.5", {}),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] + "-" + c[3] for c in CASES])
def test_stage_arrays_equal_the_walk_run_by_run(case, monkeypatch):
    arch, model, sc, place, pol = case
    plans = []
    real = schedule._transfers
    for module in (schedule, array_plan):
        monkeypatch.setattr(module, "_transfers", lambda *a: real(*a) or plans.append(a[6]))

    def run():
        return simulate(load_arch(arch), get_model(model), Scenario(**sc),
                        placement=parse_placement(place), policies=Policies(**pol))

    new = run()
    monkeypatch.setattr(schedule, "STAGE_ARRAYS", False)
    old = run()
    a, b = plans
    assert len(a.transfers) > 0 and list(a.transfers) == list(b.transfers)
    assert a.extra_deps == b.extra_deps
    assert list(a.resources.items()) == list(b.resources.items())   # registered in order
    for table in ("ops", "transfers", "resources"):
        x, y = getattr(old, table), getattr(new, table)
        assert list(x.columns) == list(y.columns)
        for col in x.columns:
            assert x[col].equals(y[col]), (table, col)
    assert old.metrics == new.metrics or all(
        old.metrics[k] == new.metrics[k] or np.isnan(old.metrics[k])
        for k in old.metrics)


@pytest.mark.parametrize("defer", [True, False])
@pytest.mark.parametrize("arch,group,own", [("spr-a100", ("gpu0",), "cpu0.dram"),
                                            ("dgx-h100", ("gpu0", "gpu1"), "host_ddr")])
def test_activations_counted_by_hand(defer, arch, group, own):
    from sim.system.hosted import Activations

    # hosted ops 5 (device deps 1 and 3, users 6 and 7; reads 64 B, writes 32 B), 8 (no
    # device dep, user 9) and 10 (deps 9 and 4, no user) on the host CPU, exchanging with one
    # GPU or a tensor-parallel pair (each moving its own shard: half the bytes): deferred,
    # the first op's transfers are made at once (the routes made there), the others
    # recorded and made as one block
    system = build_system(load_arch(arch))
    k = len(group)
    plan = Plan(streams={"gpu0.compute": None}, first_transfer_id=20)
    moves = Activations(plan, system, group, own, defer=defer)
    traffic = {"activations": (64.0, 32.0)}
    moves.move(5, "decode", 0, 1, [1, 3], [6, 7], traffic)
    moves.move(8, "decode", 0, 1, [], [9], traffic)
    moves.move(10, "decode", 1, 1, [9, 4], [], traffic)
    moves.move(11, "decode", 1, 1, [9], [12], {"activations": (0.0, 0.0)})   # nothing
    moves.move(13, "decode", 1, 1, [12, 4], [14], {})                        # nothing
    moves.flush()
    got = [(t.id, t.name, t.nbytes, t.replicas, t.deps, t.anchor, t.release)
           for t in plan.transfers]
    into, out = f"activations gpu0->{own}", f"activations {own}->gpu0"
    assert got == [(20, into, 64.0 / k, k, (1, 3), 3.5, IN_PLACE),
                   (21, out, 32.0 / k, k, (5,), 5.5, IN_PLACE),
                   (22, out, 32.0 / k, k, (8,), 8.5, IN_PLACE),
                   (23, into, 64.0 / k, k, (9, 4), 9.5, IN_PLACE)]
    assert plan.extra_deps == {5: (20,), 6: (21,), 7: (21,), 9: (22,), 10: (23,)}


def test_staged_bytes_per_run_and_tier_by_hand():
    """Bytes staged per run (release op) and destination tier: two transfers released by op
    10 on gpu0.hbm add up (3 + 4 B), one released by op 10 on another tier stays apart, one
    landing in place (release -2) stages nothing; runs in release order, tiers in the order
    transfers first stage to them."""
    from sim.system.budget import _runs_bytes

    def tr(i, dst, nbytes, release):
        return Transfer(i, "w", "weights", "gpu0.copy", "host_ddr", dst, nbytes, 1, (), (),
                        0.0, 0.0, release=release)

    plan = Plan(streams={}, transfers=[tr(0, "gpu0.hbm", 5.0, 20), tr(1, "gpu0.hbm", 3.0, 10),
                                       tr(2, "gpu1.hbm", 2.0, 10), tr(3, "gpu0.hbm", 4.0, 10),
                                       tr(4, "gpu0.hbm", 9.0, IN_PLACE)])
    got = {dst: runs.tolist() for dst, runs in _runs_bytes(plan).items()}
    assert list(got) == ["gpu0.hbm", "gpu1.hbm"]
    assert got == {"gpu0.hbm": [7.0, 5.0], "gpu1.hbm": [2.0]}


def test_ragged_helpers_by_hand():
    """``int_rows``, ``ordered_sums``, ``sum_in_order``, ``add_waits`` and ``Text.of_codes`` on
    small inputs."""
    from sim.columns import Text
    from sim.system.plan import add_waits
    from workloads.ragged import int_rows, ordered_sums, sum_in_order

    lengths, flat = int_rows([(4, 5), (), (6,)])
    assert lengths.tolist() == [2, 0, 1] and flat.tolist() == [4, 5, 6]
    # owner 0: 0.1 + 0.2 + 0.3 left to right (0.6000000000000001), owner 2: 5.0, owner 1: none
    sums = ordered_sums(np.array([0, 0, 0, 2]), np.array([0.1, 0.2, 0.3, 5.0]), 3)
    assert sums.tolist() == [(0.1 + 0.2) + 0.3, 0.0, 5.0]
    # a running sum: each 1.0 is lost against 1e16 in turn (a pairwise sum keeps their 2.0)
    assert sum_in_order(1e16, [1.0, 1.0]) == 1e16 != 1e16 + 2.0
    extra = {7: (1,)}
    add_waits(extra, np.array([9, 7, 9]), np.array([10, 11, 12]))
    assert extra == {7: (1, 11), 9: (10, 12)}
    # labels may repeat: the column is the one Text.of makes of the values row by row
    t = Text.of_codes(["b", "a", "b", "c"], np.array([2, 1, 0, 1]))
    ref = Text.of(["b", "a", "b", "a"])
    assert t.labels == ref.labels == ["b", "a"] and t.codes.tolist() == ref.codes.tolist()
