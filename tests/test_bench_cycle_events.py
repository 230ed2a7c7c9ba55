"""benchmarks/bench_devices.py counts the events a cycle-fidelity run's compiled models
process: DRAM requests by hand (bytes over the request size), PIM commands as the schedule's
closed-form count, each memoised result once."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_devices import CycleEvents  # noqa: E402

from arch import load_arch  # noqa: E402


def test_dram_requests_counted_once_per_simulated_stream():
    import sim.micro.dram as dram
    from sim.micro.cycle_dram import run_segments, stream_segments
    from sim.micro.dram_config import config_from_arch

    cfg = config_from_arch(load_arch("duplex"))
    run_segments.cache_clear()
    nbytes = 300 * cfg.request_bytes
    before = dram.simulate
    with CycleEvents() as counted:
        run_segments(cfg, stream_segments(nbytes))
        run_segments(cfg, stream_segments(nbytes))          # memoised: not simulated again
        run_segments(cfg, stream_segments(nbytes, write_bytes=44 * cfg.request_bytes))
    assert counted.dram == 300 + 344 and counted.pim == 0
    assert dram.simulate is before                          # put back on leaving


def test_pim_commands_are_the_schedules_count():
    from sim.devices.pim import PimModel
    from sim.micro.cycle_pim import gemv_cycle_cost, gemv_mapping, schedule_commands

    pm = PimModel(load_arch("pim-neupims-hbm2"))
    cfg, pim = pm.cfg1, pm.pim
    row = cfg.page_bytes // pim.elem_bytes
    gemv_cycle_cost.cache_clear()
    with CycleEvents() as counted:
        gemv_cycle_cost(cfg, pim, 3000, 4 * row)
        gemv_cycle_cost(cfg, pim, 3000, 4 * row)
    want = schedule_commands(cfg, pim, gemv_mapping(cfg, pim, 3000, 4 * row))
    assert counted.pim == want and counted.dram == 0
