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


# --- exact command schedules (hand counts on the HBM-PIM channel: tFAW 30, tRCD 14, tRP 14,
# tRAS 34, tRTP 4, CL 14, 2-cycle bursts, 1 KiB rows, 16 banks, 64 B per burst) -------------
@pytest.fixture(scope="module")
def hbm_pim():
    cfg = config_from_arch(load_arch("pim-hbm-pim"), channels=1)
    assert (cfg.tFAW, cfg.tRCDRD, cfg.tRP, cfg.tRAS, cfg.tRTP, cfg.CL, cfg.AL) == \
        (30, 14, 14, 34, 4, 14, 0)
    assert (cfg.burst_cycle, cfg.page_bytes, cfg.banks, cfg.request_bytes, cfg.ranks) == \
        (2, 1024, 16, 64, 2)
    return cfg


def test_one_tile_schedule_by_hand(hbm_pim):
    """One rank, one tile, 8 MACs, one RDRES, GWRITE at 1 cycle per 32 B (32 cycles): GWRITE
    at cycle 0; four GACTs (16 banks / 4) at 1, 31, 61, 91 (tFAW apart); the first MAC
    tRCD = 14 after the last GACT (105; the slice is in the buffer since 32); MACs every
    max(burst 2, tCCD_S 1) = 2 cycles: 105..119; RDRES at 121, its data done RL + burst = 16
    later: 137 cycles."""
    r = sweep(hbm_pim.with_(ranks=1), PimConfig(gwrite_cycles_per_32B=1), 1, 1, 8, 1)
    assert (r.gwrites, r.gacts, r.macs, r.rdres, r.pres) == (1, 4, 8, 1, 1)
    assert r.cycles == 1 + 3 * 30 + 14 + 8 * 2 + 14 + 2


def test_two_tile_schedule_by_hand(hbm_pim):
    """One rank, one GACT opens all 16 banks (act_group 16), two tiles of 2 MACs, NewtonSim's
    GWRITE (3 cycles per 32 B: 96 cycles for a 1 KiB row). Tile 1: GWRITE 0..96, GACT at 1,
    MACs at 96 and 98 (waiting for the slice), RDRES at 100, PRE tRTP = 4 later at 104. Tile 2:
    GACT tRP = 14 after the PRE (118), MACs at 132, 134 (tRCD), RDRES at 136 (data done 152),
    PRE held by tRAS = 34 from its GACT: 152; the run ends the cycle after: 153."""
    r = sweep(hbm_pim.with_(ranks=1), PimConfig(act_group=16), 1, 2, 2, 1)
    assert (r.gwrites, r.gacts, r.macs, r.rdres, r.pres) == (1, 2, 4, 2, 2)
    assert r.cycles == 96 + 2 * 2 + 4 + 14 + 34 + 1


def test_single_global_buffer_waits_for_the_previous_chunk(hbm_pim):
    """Two chunks of one tile each, single-buffered global buffer: the second slice is written
    only after the first chunk's last column command (RDRES at 100) and once the data bus is
    free (its data end at 116); it is in the buffer at 116 + 96 = 212, so the second tile's
    MACs run at 212 and 214, its RDRES at 216, data done at 216 + 16 = 232. Double-buffered,
    the second GWRITE starts at 96 instead and the run is shorter."""
    single = PimConfig(act_group=16, double_buffered_gb=False)
    r = sweep(hbm_pim.with_(ranks=1), single, 2, 1, 2, 1)
    assert (r.gwrites, r.tiles) == (2, 2)
    assert r.cycles == 116 + 96 + 2 * 2 + 14 + 2
    double = sweep(hbm_pim.with_(ranks=1), PimConfig(act_group=16), 2, 1, 2, 1)
    assert double.cycles < r.cycles


def test_sweep_energy_is_newtonsim_scaled_idd(hbm_pim):
    """Command energy of a schedule (NewtonSim's scaling of DRAMsim3's IDD energies): a GACT
    of 4 banks = 4 ACTs, a MAC = 4 READs, an RDRES moves 16 banks x 2 ranks x 2 B = 64 B =
    one burst = 1 READ, a GWRITE fills a 1 KiB row = 16 bursts = 16 WRITEs."""
    r = sweep(hbm_pim, PimConfig(), 1, 4, 8, 1)
    e = hbm_pim.energies_pJ()
    want = r.gacts * 4 * e["act"] + r.macs * 4 * e["read"] + r.rdres * 1 * e["read"] + \
        r.gwrites * 16 * e["write"]
    assert r.energy_pJ(hbm_pim, PimConfig()) == pytest.approx(want, rel=1e-12)


def test_peak_macs_by_hand(hbm_pim):
    """HBM-PIM (pim-hbm-pim): one 16-lane unit per 2 banks, 16 banks in each of 2 pseudo
    channels: 16 units per channel; a 300 MHz unit takes ceil(3.33 ns / 1 ns) = 4 DRAM
    cycles per MAC: 16 x 16 / 4 ns = 64 G MAC/s per channel. GDDR6-AiM (pim-gddr6-aim): 16
    banks x 16 lanes, a MAC every 2-cycle burst at 0.5 ns (tCCD_S = 2; the bank-group spacing
    tCCD_L = 4 does not bind all-bank MACs): 256 G MAC/s per channel (Lee et al., ISSCC 2022:
    1 TFLOPS for the chip's two channels at 1 GHz)."""
    from sim.devices.pim import pim_config

    hp = pim_config(load_arch("pim-hbm-pim"))
    assert peak_macs_per_s(hbm_pim, hp, 1) == pytest.approx(64e9, rel=1e-12)
    aim_arch = load_arch("pim-gddr6-aim")
    aim = config_from_arch(aim_arch, channels=1)
    assert (aim.burst_cycle, aim.tCCD_S, aim.tCCD_L, aim.tCK) == (2, 2, 4, 0.5)
    assert PimConfig().mac_interval(aim) == 2
    assert peak_macs_per_s(aim, pim_config(aim_arch), 1) == pytest.approx(256e9, rel=1e-12)
    assert 2 * 2 * peak_macs_per_s(aim, pim_config(aim_arch), 1) == pytest.approx(1.024e12)


def test_one_matrix_splits_its_rows_over_every_channel():
    """A single weight matrix on the 16-channel AiM: each channel takes 4096 / 16 = 256 of its
    rows, so the GEMV takes one channel's time for 256 x 4096 and 16 channels' energy."""
    from sim.devices.pim import PimModel

    model = PimModel(load_arch("pim-gddr6-aim"))
    assert model.channels == 16
    got = model.gemv(1, 4096, 4096, 1)
    one = gemv_cost(model.cfg1, model.pim, 256, 4096)
    assert got["seconds"] == pytest.approx(one.seconds, rel=1e-12)
    assert got["energy_J"] == pytest.approx(16 * one.energy_J, rel=1e-12)


def test_background_power_is_idd3n_of_every_rank():
    """HBM-PIM (tCK 1 ns): active standby of every pseudo channel, VDD 1.2 V x IDD3N 55 mA x
    1 device x 2 pseudo channels x 32 channels = 4.224 W, added to the preset's static
    power."""
    arch = load_arch("pim-hbm-pim")
    dev = device_for(arch, "tile")
    cfg = dev.model.cfg1
    assert (cfg.VDD, cfg.IDD3N, cfg.devices_per_rank, cfg.ranks, arch.dram.channels,
            cfg.tCK) == (1.2, 55.0, 1, 2, 32, 1.0)
    assert dev.model.background_power() == pytest.approx(1.2 * 0.055 * 2 * 32, rel=1e-12)
    assert dev.static_power() == pytest.approx(arch.energy.static_power + 4.224, rel=1e-12)


def test_background_power_does_not_depend_on_the_clock_period():
    """GDDR6-AiM (tCK 0.5 ns): VDD 1.35 V x IDD3N 61 mA x 1 device x 1 rank x 16 channels =
    1.318 W of active standby, whatever the clock."""
    arch = load_arch("pim-gddr6-aim")
    model = device_for(arch, "tile").model
    cfg = model.cfg1
    assert (cfg.VDD, cfg.IDD3N, cfg.devices_per_rank, cfg.ranks, arch.dram.channels,
            cfg.tCK) == (1.35, 61.0, 1, 1, 16, 0.5)
    assert model.background_power() == pytest.approx(1.35 * 0.061 * 16, rel=1e-12)


def test_host_vector_op_by_hand():
    """An add of two 4096 x 64 fp16 tensors on AiM's host ASIC: 262,144 adds on 256 lanes at
    1 GHz = 1,024 cycles = 1.024 us; its 1.5 MiB (two inputs, one output) stream over the
    512 GB/s link at the DRAM's streaming efficiency; plus the 50 ns link latency."""
    from workloads.einsum import TensorRef, elementwise
    from workloads.trace import VECTOR, Op

    x = TensorRef("x", ("m", "n"), "fp16", "activation")
    y = TensorRef("y", ("m", "n"), "fp16", "activation")
    z = TensorRef("z", ("m", "n"), "fp16", "activation")
    e = elementwise("add", z, (x, y), {"m": 4096, "n": 64}, map_op="add")
    arch = load_arch("pim-gddr6-aim")
    assert (arch.pim_host.vector_lanes, arch.pim_host.clock, arch.pim_host.link_bandwidth,
            arch.pim_host.link_latency) == (256, 1e9, 512e9, 50e-9)
    dev = device_for(arch, "tile")
    op = Op(0, "add", VECTOR, "decode", 0, 0, e, flops=e.flops, bytes=e.min_bytes)
    c = dev.host_cost(op)
    assert c.detail["t_compute"] == pytest.approx(1024e-9, rel=1e-12)
    t_link = 3 * 4096 * 64 * 2 / (512e9 * dev._stream.efficiency)
    assert c.detail["t_link"] == pytest.approx(t_link, rel=1e-12)
    assert c.latency == pytest.approx(max(1024e-9, t_link) + 50e-9, rel=1e-12)


def test_host_gelu_is_one_lane_cycle_per_application_not_its_flops():
    """A GELU over 4096 x 64 fp16 on AiM's host ASIC: 262,144 applications, one per lane per
    cycle (the preset's op_cycles), on 256 lanes at 1 GHz = 1.024 us; its roofline counts
    those applications, not the GELU's 8 FLOPs each (8.19 us, which held the op to it)."""
    from workloads.einsum import TensorRef, elementwise
    from workloads.trace import VECTOR, Op

    x = TensorRef("x", ("m", "n"), "fp16", "activation")
    z = TensorRef("z", ("m", "n"), "fp16", "activation")
    e = elementwise("gelu", z, (x,), {"m": 4096, "n": 64}, map_op="copy", unary="gelu")
    arch = load_arch("pim-gddr6-aim")
    assert arch.pim_host.op_cycles["gelu"] == 1
    dev = device_for(arch, "tile")
    op = Op(0, "gelu", VECTOR, "decode", 0, 0, e, flops=e.flops, bytes=e.min_bytes)
    assert op.flops == 8 * 4096 * 64
    c = dev.host_cost(op)
    assert c.detail["t_compute"] == pytest.approx(1024e-9, rel=1e-12)
    t_link = 2 * 4096 * 64 * 2 / (512e9 * dev._stream.efficiency)
    assert dev.roofline(op) == pytest.approx(max(1024e-9, 2 * 4096 * 64 * 2 / 512e9),
                                             rel=1e-12)
    assert c.latency == pytest.approx(max(1024e-9, t_link) + 50e-9, rel=1e-12)


def test_npu_share_leaves_the_free_command_slots():
    """NeuPIMs' NPU share of the DRAM while PIM takes a fraction of the command bus: each free
    command slot starts a read whose data takes burst_cycle (2) cycles of the data bus. PIM at
    75% of the slots: 25% x 2 = 50% of the data bus; at 40%: 60% x 2 > 1, all of it; at 99%:
    the 5% floor."""
    from sim.devices.npu_pim import npu_share

    assert npu_share(0.75, 2) == pytest.approx(0.5)
    assert npu_share(0.40, 2) == 1.0
    assert npu_share(0.90, 4) == pytest.approx(0.4)
    assert npu_share(0.99, 2) == 0.05


@pytest.mark.parametrize("fidelity", ["tile", "cycle"])
def test_full_tiles_do_exactly_the_useful_macs_with_shared_units(fidelity):
    """HBM-PIM (one 16-lane unit per 2 banks, 8 units per 16-bank rank, 512-element rows):
    a 256 x 512 GEMV is 16 tiles of one full row per bank, each unit taking 2 x 512 / 16 = 64
    MAC commands of 16 multiplies per tile: 16 x 64 x 8 x 16 = 131,072 = 256 x 512 MACs, all
    useful."""
    from sim.devices.pim import pim_config
    from sim.micro.cycle_pim import gemv_cycle_cost

    arch = load_arch("pim-hbm-pim")
    cfg, p = config_from_arch(arch, channels=1), pim_config(arch)
    assert p.banks_per_unit == 2
    g = (gemv_cost if fidelity == "tile" else gemv_cycle_cost)(cfg, p, 256, 512)
    assert g.tiles == 16
    assert g.macs == 16 * 64 * 8 * 16 == 256 * 512
    assert g.mac_utilization == 1.0


def test_dram_energy_is_current_times_voltage_times_time():
    """The IDD energies count clock cycles (DRAMsim3's units); in joules they are V x I x t, so
    the same command schedule at half the clock period (the same currents, cycles counts
    unchanged) takes half the energy: active standby over 1,000 cycles of GDDR6-AiM (0.5 ns)
    is 1.35 V x 61 mA x 500 ns; a PIM GEMV, on the tile and the cycle path, a cycle-level
    DRAM stream and a streaming pattern's energy per byte halve from tCK 1 ns to 0.5 ns."""
    from sim.devices.pim import pim_config
    from sim.micro.cycle_dram import run_segments, stream_segments
    from sim.micro.cycle_pim import gemv_cycle_cost
    from sim.micro.dram_patterns import pattern_timing

    arch = load_arch("pim-gddr6-aim")
    cfg, p = config_from_arch(arch, channels=1), pim_config(arch)
    assert (cfg.tCK, cfg.VDD, cfg.IDD3N, cfg.devices_per_rank) == (0.5, 1.35, 61.0, 1)
    standby = cfg.energies_pJ()["act_standby"] * 1000
    assert cfg.joules(standby) == pytest.approx(1.35 * 61e-3 * 1000 * 0.5e-9, rel=1e-12)
    slow = cfg.with_(tCK=1.0)
    for cost in (gemv_cost, gemv_cycle_cost):
        fast_g, slow_g = cost(cfg, p, 256, 512), cost(slow, p, 256, 512)
        assert fast_g.cycles == slow_g.cycles
        assert fast_g.energy_J == pytest.approx(0.5 * slow_g.energy_J, rel=1e-12)
    segs = stream_segments(1 << 20)
    fast_r, slow_r = run_segments(cfg, segs), run_segments(slow, segs)
    assert fast_r.simulated_seconds == pytest.approx(0.5 * slow_r.simulated_seconds, rel=1e-12)
    assert fast_r.energy_J == pytest.approx(0.5 * slow_r.energy_J, rel=1e-12)
    fast_p, slow_p = (pattern_timing(c, "stream", requests=4096) for c in (cfg, slow))
    assert fast_p.cycles == slow_p.cycles
    assert fast_p.energy_pJ_per_byte == pytest.approx(0.5 * slow_p.energy_pJ_per_byte,
                                                      rel=1e-12)
