"""Bank-level PIM: command-schedule bounds, GEMV mapping, devices built on it, presets."""

from __future__ import annotations

import math

import pytest

from arch import load_arch
from sim.devices.base import device_for
from sim.micro.dram_config import config_from_arch
from sim.micro.dram_pim import PimConfig, gemv_cost, peak_macs_per_s, sweep
from sim.run import simulate
from workloads.models import get_model
from workloads.scenario import Scenario


@pytest.fixture(scope="module")
def hbm2():
    return config_from_arch(load_arch("dram-hbm2-neupims"), channels=1)


def test_sweep_obeys_dram_timing(hbm2):
    p = PimConfig()
    groups = hbm2.banks // p.act_group
    one_rank = hbm2.with_(ranks=1)
    r = sweep(one_rank, p, chunks=1, tiles_per_chunk=1, macs_per_tile=32, rdres_per_tile=4)
    # 4 grouped ACTs tFAW apart, tRCD, then 32 MACs one column slot apart, then RDRES
    floor = (groups - 1) * hbm2.tFAW + hbm2.tRCDRD + 32 * p.mac_interval(hbm2)
    assert r.cycles >= floor
    assert (r.gacts, r.macs, r.rdres, r.pres, r.gwrites) == (groups, 32, 4, 1, 1)
    # several tiles: the rank waits tRP after each precharge and tFAW between activations
    r8 = sweep(one_rank, p, 1, 8, 32, 4)
    assert r8.cycles >= 8 * (groups * hbm2.tFAW) - hbm2.tFAW
    # two ranks (pseudo-channels) overlap: faster than one, never more than twice as fast
    two = sweep(hbm2, p, 1, 16, 32, 4)
    one = sweep(one_rank, p, 1, 16, 32, 4)
    assert one.cycles / 2 <= two.cycles < one.cycles


def test_gemv_mapping_and_roofline(hbm2):
    p = PimConfig()
    g = gemv_cost(hbm2, p, outputs=4096, length=4096)
    assert g.useful_macs == 4096 * 4096
    assert g.macs >= g.useful_macs
    peak = peak_macs_per_s(hbm2, p, 1)
    assert g.seconds >= g.useful_macs / peak        # never beats the MAC units
    assert 0.0 < g.bus_busy <= 1.0 and g.energy_J > 0
    # energy per MAC in a plausible range for near-bank compute (sub-pJ to tens of pJ)
    assert 1e-14 < g.energy_J / g.useful_macs < 5e-11
    # short dot products pack several outputs per row; long ones split into chunks
    short = gemv_cost(hbm2, p, outputs=1024, length=128)
    assert short.gwrites == 1 and short.tiles == math.ceil(1024 / (hbm2.banks * 4))
    long = gemv_cost(hbm2, p, outputs=64, length=2048)
    assert long.gwrites == 4


def test_unit_clock_and_banks_per_unit(hbm2):
    fast = PimConfig()
    slow = PimConfig(banks_per_unit=2, unit_period_ns=1e9 / 300e6)
    assert slow.mac_interval(hbm2) == math.ceil((1 / 300e6) / 1e-9)
    a = gemv_cost(hbm2, fast, 4096, 1024)
    b = gemv_cost(hbm2, slow, 4096, 1024)
    assert b.seconds > 2 * a.seconds   # half the units, slower clock


def test_pim_device_runs_gpt2_with_invariants():
    arch = load_arch("pim-gddr6-aim")
    r = simulate(arch, get_model("gpt2-small"), Scenario(batch=1, prompt_len=16, gen_len=4))
    assert set(r.invariants.values()) == {"passed"}
    dev = device_for(arch, "tile")
    ops = r.ops
    assert (ops["latency_s"] >= ops["roofline_s"] * (1 - 1e-9)).all()
    assert dev.static_power() > 0


def test_npu_pim_device_offloads_decode_attention():
    arch = load_arch("neupims")
    dev = device_for(arch, "tile")
    r = simulate(arch, get_model("gpt2-small"), Scenario(batch=8, prompt_len=32, gen_len=3))
    assert set(r.invariants.values()) == {"passed"}
    from sim.serving.layer_costs import LayerCosts

    st = LayerCosts(dev, get_model("gpt2-small"), 1).stages(8, 64)
    assert st["attn"].ops["qk"].detail.get("unit") == "pim"
    assert st["pre"].ops["qkv_proj"].detail.get("unit") != "pim"
    # the naive preset differs only in its row buffers
    naive = load_arch("neupims-naive")
    assert naive.pim.row_buffers == 1 and arch.pim.row_buffers == 2


def test_pim_presets_cite_their_figures():
    aim = load_arch("pim-gddr6-aim")
    hbm = load_arch("pim-hbm-pim")
    neu = load_arch("pim-neupims-hbm2")
    assert (aim.pim.lanes, aim.pim.banks_per_unit, aim.pim.unit_clock) == (16, 1, 1e9)
    assert (hbm.pim.lanes, hbm.pim.banks_per_unit, hbm.pim.unit_clock) == (16, 2, 300e6)
    assert (neu.pim.lanes, neu.pim.row_buffers) == (16, 2)
    for a in (aim, hbm, neu):
        assert "Lee et al" in a.provenance["pim.lanes"] or "NeuPIMs" in a.provenance["pim.lanes"]


def test_every_input_vector_streams_the_whole_matrix():
    """A bank-PIM unit holds one input vector at a time (GWRITE), so m tokens against one
    outputs x length weight matrix cost m single-vector passes: exactly m times the command
    schedule of one vector (not the matrix's outputs split among the vectors)."""
    from sim.devices.pim import PimModel

    model = PimModel(load_arch("pim-hbm-pim"))
    one = model.gemv(1, 4096, 4096, 1)
    four = model.gemv(1, 4096, 4096, 4)
    assert four["seconds"] == pytest.approx(4 * one["seconds"], rel=1e-12)
    assert four["energy_J"] == pytest.approx(4 * one["energy_J"], rel=1e-12)
