"""Run ZigZag 3.9.1 (LOMA, lpf_limit 6, opt=latency) on GEMM cases; print one JSON list.

Runs in an environment with ``zigzag-dse`` installed (not a dependency of xpusim):
``/tmp/zz/bin/python validation/zigzag/zigzag_side.py CASES.json``. Each case: ``hardware``
(YAML path, or ``zigzag:NAME`` for one shipped with ZigZag), ``m``, ``n``, ``k``, ``spatial``
({"D1": [dim, f], "D2": [dim, f]}), optional ``ordering`` (a fixed temporal ordering,
innermost loop first, to score a given loop nest), optional ``precision`` (bits: I, W, O
partial sum, O_final). The result per case: energy (pJ), latency (cycles, ZigZag's
latency_total2), CPU and wall time, and each operand's loops per memory level (innermost level
first, innermost loop first, as ZigZag allocated them).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time

import yaml


def run_case(case: dict) -> dict:
    from zigzag.api import get_hardware_performance_zigzag

    prec = case.get("precision", {"I": 8, "W": 8, "O": 16, "O_final": 8})
    layer = {"id": 0, "name": "gemm", "operator_type": "Gemm",
             "equation": "O[m][n]+=I[m][k]*W[k][n]", "loop_dims": ["M", "N", "K"],
             "loop_sizes": [case["m"], case["n"], case["k"]], "operand_precision": prec,
             "operand_source": {"I": 0, "W": 0}}
    mapping = {"name": "default",
               "spatial_mapping": {d: [f"{r}, {f}"] for d, (r, f) in case["spatial"].items()},
               "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"}}
    if case.get("ordering"):
        mapping["temporal_ordering"] = [[r, int(f)] for r, f in case["ordering"]]
    hardware = case["hardware"]
    if hardware.startswith("zigzag:"):   # a hardware file shipped with ZigZag
        import zigzag
        hardware = os.path.join(os.path.dirname(zigzag.__file__), "inputs", "hardware",
                                hardware.split(":", 1)[1] + ".yaml")
    folder = tempfile.mkdtemp(prefix="zz_")
    wl, mp = os.path.join(folder, "workload.yaml"), os.path.join(folder, "mapping.yaml")
    with open(wl, "w") as fh:
        yaml.safe_dump([layer], fh)
    with open(mp, "w") as fh:
        yaml.safe_dump([mapping], fh)
    t0, c0 = time.perf_counter(), time.process_time()
    energy, latency, cmes = get_hardware_performance_zigzag(
        wl, hardware, mp, opt="latency", dump_folder=folder, lpf_limit=6,
        loma_show_progress_bar=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cme = cmes[0][1][0][0]
    tm = cme.temporal_mapping.mapping_dic_origin
    alloc = {str(op): [[[str(r), int(f)] for r, f in level] for level in levels]
             for op, levels in tm.items()}
    mems = {str(op): [lv.name for lv in cme.accelerator.memory_hierarchy.get_memory_levels(
        cme.layer.memory_operand_links[op])] for op in tm}
    return {"energy_pJ": float(energy), "latency_cycles": float(latency),
            "ideal_cycles": float(cme.ideal_cycle), "onload": float(cme.data_onloading_cycle),
            "offload": float(cme.data_offloading_cycle), "mac_pJ": float(cme.mac_energy),
            "mem_pJ": float(cme.mem_energy), "wall_s": wall, "cpu_s": cpu,
            "allocation": alloc, "memories": mems}


def main() -> int:
    logging.disable(logging.CRITICAL)
    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    print(json.dumps([run_case(c) for c in cases]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
