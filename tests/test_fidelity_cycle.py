"""``--fidelity cycle``: the cycle-level micro-models run per distinct op (docs/fidelity.md)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from arch import arch_from_dict, load_arch, load_arch_data
from sim.devices.base import SimError, device_for, fidelities_of
from workloads.einsum import TensorRef, contraction
from workloads.models import get_model
from workloads.scenario import Scenario
from workloads.trace import MATMUL, Op
from workloads.tracer import trace_model
from xpusim.cli import main


def npu_with_dram(**npu) -> object:
    """neupims-npu with the NeuPIMs HBM2 ``dram`` section of preset ``neupims``; ``npu``
    fields overridden."""
    data, _ = load_arch_data("neupims-npu")
    data = dict(data, name="npu-hbm2", dram=load_arch_data("neupims")[0]["dram"])
    data["npu"] = {**data["npu"], **npu}
    return arch_from_dict(data, "npu-hbm2")


def gemm_op(m: int, n: int, k: int, name: str = "g") -> Op:
    a = TensorRef("A", ("m", "k"), "fp16", "activation")
    b = TensorRef("B", ("k", "n"), "fp16", "weight")
    c = TensorRef("C", ("m", "n"), "fp16", "activation")
    e = contraction(name, c, a, b, {"m": m, "n": n, "k": k})
    return Op(id=0, name=name, kind=MATMUL, phase="decode", layer=0, step=0, compute=e,
              flops=e.flops, bytes=e.min_bytes)


def dram_seconds(cfg, ranges: list[tuple[int, int]]) -> float:
    """Hand-built request stream (``(base, bytes)`` runs, read in order) through the DRAM
    model, each channel's front end issuing a request per cycle."""
    from sim.micro.dram import simulate

    req = cfg.request_bytes
    addrs = np.concatenate([np.arange(b, b + n, req, dtype=np.uint64) for b, n in ranges])
    st = simulate(cfg, addrs, np.zeros(addrs.shape[0], np.int8),
                  np.zeros(addrs.shape[0], np.int64), cycles=10**7, frontend="per_channel",
                  until_done=True)
    return st.cycles * cfg.tCK * 1e-9


SMALL = dict(arrays=1, array_rows=8, array_cols=8, dataflow="os", overlap_folds=False,
             tiling="min_traffic")


def test_one_gemm_is_systolic_cycles_plus_dram_stall():
    """16x16x8 fp16 on one 8x8 OS array: 4 folds x (8 + 8 + 8 - 2) = 88 cycles at 1 GHz, plus
    (not double-buffered) the tile loads through the DRAM model: tiles (8, 16, 8), N outer, M
    inner, B resident across M (tk = K): A0, B, C0, A1, C1."""
    from sim.micro.dram_config import config_from_arch

    arch = npu_with_dram(**SMALL, double_buffered=False)
    cost = device_for(arch, "cycle").estimate(gemm_op(16, 16, 8))
    assert cost.detail["cycles"] == 4 * (8 + 8 + 8 - 2)
    assert cost.detail["tile"] == (8, 16, 8) and cost.detail["order"] == "nm"
    cfg = config_from_arch(arch)
    mib = 1 << 20   # A at 0, B and C at the next 1 MiB boundaries (cycle_npu.gemm_segments)
    t_dram = dram_seconds(cfg, [(0, 128), (mib, 256), (2 * mib, 256), (128, 128),
                                (2 * mib + 256, 256)])
    assert t_dram > 0
    assert cost.latency == pytest.approx(88e-9 + t_dram, rel=1e-12)
    assert cost.detail["stall_s"] == pytest.approx(t_dram, rel=1e-12)


def test_double_buffered_stall_is_first_tile_plus_uncovered_dram():
    from sim.micro.dram_config import config_from_arch

    arch = npu_with_dram(**SMALL, double_buffered=True)
    cost = device_for(arch, "cycle").estimate(gemm_op(16, 16, 8, "g2"))
    assert cost.detail["tile"] == (8, 16, 8) and cost.detail["order"] == "nm"
    cfg = config_from_arch(arch)
    mib = 1 << 20
    t_all = dram_seconds(cfg, [(0, 128), (mib, 256), (2 * mib, 256), (128, 128),
                               (2 * mib + 256, 256)])
    t_first = dram_seconds(cfg, [(0, 128), (mib, 256)])     # first A and B tiles: 384 B
    t_comp = 88e-9
    assert cost.latency == pytest.approx(t_comp + min(t_first, t_all)
                                         + max(0.0, t_all - t_comp), rel=1e-12)


def test_scalesim_run_counts_the_array():
    """The array count comes from the SCALE-Sim-compatible run (its last-cycle index + 1)."""
    from sim.micro.cycle_npu import array_cycles
    from sim.micro.systolic_trace import ScaleSimConfig, run_gemm

    cyc, stall, src = array_cycles(40, 24, 20, 8, 8, "ws", False, 4096, 4096, 4096)
    ref = run_gemm(40, 24, 20, ScaleSimConfig(rows=8, cols=8, dataflow="ws", ifmap_kb=4,
                                              filter_kb=4, ofmap_kb=4))
    assert src == "scalesim run"
    assert cyc == ref.compute_cycles + 1
    # ws: folds = ceil(K/8) x ceil(N/8) = 3 x 3, each 2*8 + 8 + M - 2 cycles (no stalls here)
    assert stall == 0 and cyc == 9 * (2 * 8 + 8 + 40 - 2)


def test_memoised_per_distinct_op(monkeypatch):
    """A second op of the same shape (another Einsum object) runs no new simulation."""
    import sim.micro.dram as dram
    import sim.micro.systolic_trace as st

    calls = {"dram": 0, "array": 0}
    real_sim, real_run = dram.simulate, st.run_gemm

    def count_sim(*a, **k):
        calls["dram"] += 1
        return real_sim(*a, **k)

    def count_run(*a, **k):
        calls["array"] += 1
        return real_run(*a, **k)

    monkeypatch.setattr(dram, "simulate", count_sim)
    monkeypatch.setattr(st, "run_gemm", count_run)
    dev = device_for(npu_with_dram(**SMALL, double_buffered=True), "cycle")
    dev.estimate(gemm_op(24, 40, 56, "first"))
    first = dict(calls)
    assert first["dram"] >= 1 and first["array"] >= 1
    dev.estimate(gemm_op(24, 40, 56, "again"))       # new Einsum, same shape
    dev2 = device_for(npu_with_dram(**SMALL, double_buffered=True), "cycle")
    dev2.estimate(gemm_op(24, 40, 56, "other device"))
    assert calls == first


@pytest.mark.parametrize("preset", ["npu-hbm2", "neupims", "pim-neupims-hbm2", "duplex",
                                    "instinfer-csd"])
def test_roofline_below_tile_and_cycle_per_op(preset):
    arch = npu_with_dram() if preset == "npu-hbm2" else load_arch(preset)
    tile, cycle = device_for(arch, "tile"), device_for(arch, "cycle")
    sc = Scenario(batch=1, prompt_len=16, gen_len=3)
    trace = tile.split_trace(trace_model(get_model("gpt2-small"), sc, units=tile.unit_ops()))
    seen, checked, differ = set(), 0, 0
    for op in trace.ops:
        if op.kind == "collective" or id(op.compute) in seen:
            continue
        seen.add(id(op.compute))
        roof = tile.roofline(op)
        t, c = tile.estimate(op).latency, cycle.estimate(op).latency
        assert roof <= t * (1 + 1e-9), op.name
        assert roof <= c * (1 + 1e-9), op.name
        checked += 1
        differ += not math.isclose(t, c, rel_tol=1e-9)
    assert checked > 10
    assert differ > 0          # the cycle models are really used


def test_pim_cycle_runs_the_whole_schedule():
    """Tile extends a 2R- and a 6R-tile schedule linearly; cycle runs every command. On a GEMV
    of exactly 2R tiles in one chunk the fit is exact, so both agree; on a long one cycle is
    the full sweep's count."""
    from sim.devices.pim import PimModel
    from sim.micro.cycle_pim import gemv_cycle_cost, gemv_mapping
    from sim.micro.dram_pim import gemv_cost, sweep

    pm = PimModel(load_arch("pim-neupims-hbm2"))
    cfg, pim = pm.cfg1, pm.pim
    row = cfg.page_bytes // pim.elem_bytes
    outputs = 2 * cfg.ranks * cfg.banks              # one output per bank row: 2R tiles
    assert gemv_mapping(cfg, pim, outputs, row)["tiles_per_chunk"] == 2 * cfg.ranks
    assert gemv_cycle_cost(cfg, pim, outputs, row).cycles == gemv_cost(cfg, pim, outputs,
                                                                       row).cycles
    mp = gemv_mapping(cfg, pim, 3000, 4 * row)
    full = sweep(cfg, pim, mp["chunks"], mp["tiles_per_chunk"], mp["macs_per_tile"],
                 mp["rdres"])
    assert gemv_cycle_cost(cfg, pim, 3000, 4 * row).cycles == full.cycles


def test_csd_cycle_reads_pages_through_the_flash_model():
    from sim.micro.cycle_flash import engine_config
    from sim.micro.flash import page_group_read

    arch = load_arch("instinfer-csd")
    dev = device_for(arch, "cycle")
    op = gemm_op(1, 4096, 4096, "kv")
    cost = dev.estimate(op)
    cfg = engine_config(arch.flash)
    pages = math.ceil(op.bytes / cfg.page_bytes)
    planes = cfg.channels * cfg.chips_per_channel * cfg.dies_per_chip * cfg.planes_per_die
    t_flash, _ = page_group_read(cfg, pages, queue_depth=planes, random=False)
    assert cost.detail["t_memory_s"] == pytest.approx(t_flash, rel=1e-12)
    t_comp = op.flops / (arch.engine.flops["fp16"] * arch.engine.efficiency)
    assert cost.latency == pytest.approx(arch.engine.launch + max(t_comp, t_flash), rel=1e-12)


def test_xpu_pim_cycle_share_uses_the_dram_model():
    from sim.micro.cycle_dram import run_segments, stream_segments
    from sim.micro.dram_config import config_from_arch

    arch = load_arch("duplex")
    dev = device_for(arch, "cycle")
    assert dev.xpu.fidelity == "tile"                  # the GPU model has no cycle level
    assert dev.pim.multiplier == 4.0
    cfg = config_from_arch(arch)
    # 64 MiB: a 16 MiB share per TSV set (past the DRAM model's 4 MiB prefix); 1 MiB: a
    # 256 KiB share, simulated whole (its fixed latency weighs on the achieved rate)
    for nbytes, share in ((64 << 20, 16 << 20), (1 << 20, 256 << 10)):
        eff = share / run_segments(cfg, stream_segments(share)).seconds / cfg.peak_bandwidth
        want = nbytes / (dev.pim.bandwidth / dev.pim.efficiency * eff)
        assert dev._pim_time(0.0, nbytes) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("preset,kind", [("h100", "gpu"), ("spr-8480", "cpu"),
                                         ("sn40l", "dataflow"), ("u280", "fpga")])
def test_devices_without_cycle_models_refuse(preset, kind):
    with pytest.raises(SimError, match=f"the {kind} model offers roofline, tile, not 'cycle'"):
        device_for(load_arch(preset), "cycle")


def test_cli_refusal_is_one_line(capsys):
    assert main(["run", "--arch", "h100", "--fidelity", "cycle", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "roofline, tile" in err
    assert main(["run", "--arch", "fusemax", "--fidelity", "cycle", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'dram' section" in err


def test_arch_show_and_help_list_fidelities(capsys):
    for preset, want in (("neupims", "roofline, tile, cycle"), ("h100", "roofline, tile"),
                         ("fusemax", "roofline, tile")):
        assert main(["arch", "show", preset]) == 0
        out = capsys.readouterr().out
        assert f"# fidelities (xpusim run --fidelity): {want}\n" in out
        assert fidelities_of(load_arch(preset)) == tuple(want.split(", "))
    try:
        assert main(["run", "--help"]) == 0
    except SystemExit as exc:  # argparse's help action
        assert exc.code == 0
    text = " ".join(capsys.readouterr().out.split())
    # the types the help names as offering cycle are exactly those whose model offers it
    from sim.devices import load_all
    from sim.devices.base import DEVICE_MODELS

    load_all()
    offered = {t for t, cls in DEVICE_MODELS.items() if "cycle" in cls.fidelities()}
    assert offered == {"npu", "npu_pim", "pim", "xpu_pim", "csd"}
    for t in offered:
        assert t in text.split("cycle (the cycle-level micro-models, docs/fidelity.md):")[1]


def test_cycle_run_of_a_model_passes_invariants():
    from sim.run import simulate

    arch = npu_with_dram()
    sc = Scenario(batch=1, prompt_len=16, gen_len=3)
    res = simulate(arch, get_model("gpt2-small"), sc, fidelity="cycle")
    tile = simulate(arch, get_model("gpt2-small"), sc, fidelity="tile")
    assert res.metrics["latency_s"] != tile.metrics["latency_s"]
    assert (res.ops["latency_s"] >= res.ops["roofline_s"] * (1 - 1e-9)).all()
    assert dataclasses.is_dataclass(sc)


def test_pim_schedule_bound_counts_commands_exactly():
    from sim.devices.pim import PimModel
    from sim.micro.cycle_pim import gemv_mapping, schedule_commands
    from sim.micro.dram_pim import sweep

    pm = PimModel(load_arch("pim-hbm-pim"))
    for shape in ((256, 4096, 1), (3000, 2048, 3)):
        mp = gemv_mapping(pm.cfg1, pm.pim, *shape)
        full = sweep(pm.cfg1, pm.pim, mp["chunks"], mp["tiles_per_chunk"], mp["macs_per_tile"],
                     mp["rdres"])
        assert schedule_commands(pm.cfg1, pm.pim, mp) == full.bus_commands
    with pytest.raises(SimError, match="above the cycle level's 20,000,000; use --fidelity "
                                       "tile"):
        pm.gemv(1, 10**7, 8192, 4096, cycle=True)


def test_segment_requests_round_each_row_out_to_bursts():
    """64 B bursts. Three 64 B rows 256 B apart starting at byte 32: each row straddles two
    bursts (32..96), 6 requests; contiguous 128 B from byte 32 (32..160): bursts 0, 1, 2."""
    from sim.micro.cycle_dram import segment_requests

    assert segment_requests((32, 3, 64, 256, False), 64) == 6
    assert segment_requests((0, 3, 64, 256, False), 64) == 3
    assert segment_requests((32, 2, 64, 64, False), 64) == 3
    assert segment_requests((0, 2, 64, 64, False), 64) == 2


def test_csd_engine_link_carries_the_flash_channels():
    """InstInfer's drive: 8 flash channels x 1.4 GB/s = 11.2 GB/s inside the drive; the
    engine's path is widened from the drive's 4 PCIe 3.0 lanes (1.969 GB/s each) to
    ceil(11.2 / 1.969) = 6 lanes, so the host link does not limit the in-drive engine."""
    from sim.micro.cycle_flash import engine_config
    from sim.micro.flash import FlashConfig

    flash = load_arch("instinfer-csd").flash
    assert (flash.channels, flash.channel_bandwidth) == (8, 1.4e9)
    assert FlashConfig.from_spec(flash).pcie_lanes == 4
    cfg = engine_config(flash)
    assert cfg.pcie_lane_GBps == pytest.approx(1.969)
    assert cfg.pcie_lanes == 6
