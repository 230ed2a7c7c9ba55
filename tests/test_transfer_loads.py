"""A tensor-parallel group's transfers on the DGX H100 (eight GPUs, one host DDR, two CPUs),
by hand: the representative's own tier and the links at its ends carry one shard, a
standalone tier and a link between two other nodes carry every replica's shard. Each
transfer is made twice with other bytes, as the plan builders reuse a route's figures."""

import pytest

from arch import load_arch
from sim.system.hosted import transfer_between
from sim.system.plan import Plan
from sim.system.schedule import _route_of, stages_for
from sim.system.topology import build_system
from workloads.trace import Op

TP = 4


@pytest.fixture(scope="module")
def system():
    return build_system(load_arch("dgx-h100"))


def _loads(tr) -> dict[str, float]:
    return {ld.resource: ld.nbytes for ld in tr.loads}


@pytest.mark.parametrize("nbytes", [3.0e6, 5.5e7])
def test_a_weight_fetch_loads_the_shared_host_memory_once_per_replica(system, nbytes):
    stage = stages_for(system, TP, 1)[0]
    plan = Plan(streams={})
    fetch = plan.transfers[_route_of(plan, system, "weights", "host_ddr", stage, False).add(
        nbytes, (), "decode", 3, 1, 52, 39.5)]
    assert _loads(fetch) == {"host_ddr": TP * nbytes, "pcie.gpu0<": nbytes,
                             "gpu0.hbm": nbytes}
    assert fetch.floor == nbytes / system.links["pcie.gpu0"].sustained
    assert fetch.latency == system.route("host_ddr", "gpu0").latency + \
        system.tiers["host_ddr"].latency
    save = plan.transfers[_route_of(plan, system, "kv_cache", "host_ddr", stage, True).add(
        nbytes, (52,), "decode", 3, 1, -2, 52.5)]
    assert _loads(save) == {"host_ddr": TP * nbytes, "pcie.gpu0>": nbytes,
                            "gpu0.hbm": nbytes}
    assert (save.src, save.dst, save.release) == ("gpu0.hbm", "host_ddr", -2)
    assert plan.resources == {"host_ddr": system.tiers["host_ddr"].bandwidth,
                              "pcie.gpu0<": system.links["pcie.gpu0"].sustained,
                              "pcie.gpu0>": system.links["pcie.gpu0"].sustained,
                              "gpu0.hbm": system.tiers["gpu0.hbm"].bandwidth}


@pytest.mark.parametrize("nbytes", [2.0e6, 9.0e7])
def test_a_link_away_from_the_group_carries_every_replica(system, nbytes):
    op = Op(30, "optimizer_step", "elementwise", "optimizer", 0, 0, None)
    plan = Plan(streams={"gpu0.compute": None})
    down = plan.transfers[transfer_between(plan, system, "gradients", "gradients", "gpu0.hbm",
                                           "gpu0", "host_ddr", "host_ddr", nbytes,
                                           "gpu0.copy_out", (29,), op, TP)]
    assert _loads(down) == {"gpu0.hbm": nbytes, "pcie.gpu0>": nbytes,
                            "host_ddr": TP * nbytes}
    # host DDR -> CPU 0's own memory: the DDR channel joins no GPU of the group
    across = plan.transfers[transfer_between(plan, system, "states", "optimizer", "host_ddr",
                                             "host_ddr", "cpu0.dram", "cpu0", nbytes,
                                             "gpu0.copy", (30,), op, TP)]
    assert _loads(across) == {"host_ddr": TP * nbytes, "ddr.cpu0<": TP * nbytes,
                              "cpu0.dram": nbytes}
    assert across.id == down.id + 1 and across.anchor == 30.5
    assert across.energy_J == pytest.approx(
        nbytes * TP * 8 * (system.tiers["host_ddr"].energy_per_bit +
                           system.tiers["cpu0.dram"].energy_per_bit +
                           system.links["ddr.cpu0"].energy_per_bit), rel=1e-15)


def test_one_route_keeps_each_byte_counts_figures_apart(system):
    # a stage's weight fetches from host DDR, two sizes over one route in one plan (the maker
    # keeps per byte count its loads, floor and energy): each by hand, and equal bytes share
    # one tuple of loads
    stage = stages_for(system, TP, 1)[0]
    plan = Plan(streams={})
    route = _route_of(plan, system, "weights", "host_ddr", stage, False)
    link = system.links["pcie.gpu0"]
    bit = system.tiers["host_ddr"].energy_per_bit + system.tiers["gpu0.hbm"].energy_per_bit + \
        sum(system.links[h.link].energy_per_bit for h in system.route("host_ddr", "gpu0").hops)
    made = [plan.transfers[route.add(nbytes, (), "decode", 0, 1, 9, 3.5)]
            for nbytes in (4.0e6, 1.0e7, 4.0e6)]
    for tr, nbytes in zip(made, (4.0e6, 1.0e7, 4.0e6), strict=True):
        assert _loads(tr) == {"host_ddr": TP * nbytes, "pcie.gpu0<": nbytes,
                              "gpu0.hbm": nbytes}
        assert tr.floor == nbytes / link.sustained
        assert tr.energy_J == pytest.approx(nbytes * TP * 8 * bit, rel=1e-15)
    assert [tr.id for tr in made] == [0, 1, 2] and plan.transfers == made
    assert made[0].loads is made[2].loads and made[1].loads is not made[0].loads
